"""Start a Ray node the one safe way the docs and the tests share (`alstudy ray-start`).

    alstudy ray-start --head                                        # one machine: every socket on 127.0.0.1
    alstudy ray-start --head --node-ip-address 10.0.0.5             # across machines: token auth required
    alstudy ray-start --address 10.0.0.5:6379 --node-ip-address 10.0.0.6
    alstudy ray-start --stop                                        # this cluster's processes (by --temp-dir)

What Ray 2.60 does, which this works with:

- Each Ray server (GCS, the raylet's node and object managers, workers, the dashboard agent and its
  metrics, the runtime-env agent, the client server) listens on 127.0.0.1 alone when the node's IP
  is 127.0.0.1, and on every interface otherwise; no setting binds it to one chosen interface.
- On Linux `ray start` and `ray.init` replace a loopback --node-ip-address or address by the
  machine's routable IP, unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (Ray's single-machine switch,
  the default on macOS and Windows). A local cluster is started with it, and a driver reaching
  127.0.0.1 sets it too (`driver_env`). Under it Ray refuses `ray start --address`: one node.
- Across machines the servers listen on every interface, so Ray's token authentication must be on:
  RAY_AUTH_MODE=token, the token in ~/.ray/auth_token (or RAY_AUTH_TOKEN_PATH, or RAY_AUTH_TOKEN),
  the same on every node and driver; and the machines on a private network.
- `ray stop` stops every Ray process on the machine; `stop` here only those of one temp dir.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from alstudy.errors import PipelineError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
LOCAL_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray's switch for single-machine Ray
DOCS = "docs/user-guide/ray-cluster.md"


@dataclass
class Node:
    """One `ray start`: a head (`head=True`) or a node joining `address`; `node_ip_address`, a private
    IP of this machine, makes it part of a cluster across machines (token authentication required)."""

    head: bool = False
    address: str | None = None
    port: int = 6379
    node_ip_address: str | None = None
    num_cpus: int | None = None
    temp_dir: str | None = None
    client_server_port: int | None = None

    @property
    def across_machines(self) -> bool:
        return self.node_ip_address is not None and not is_loopback(self.node_ip_address)


def is_loopback(host: str) -> bool:
    return host.strip("[]") in LOOPBACK


def host_of(address: str) -> str:
    """The host of "host:port", "[v6]:port" or a bare host."""
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


def driver_env(address: str) -> dict[str, str]:
    """What a driver's environment needs to reach the cluster at `address`, before it imports ray: for a
    local cluster, Ray's single-machine switch (else Ray dials the machine's routable IP, where the
    cluster does not listen). Token authentication comes from the caller's RAY_AUTH_* variables."""
    return dict(LOCAL_ONLY) if is_loopback(host_of(address)) else {}


def token_path(env: dict[str, str]) -> Path:
    """Where Ray reads the token when RAY_AUTH_TOKEN is unset."""
    if env.get("RAY_AUTH_TOKEN_PATH"):
        return Path(env["RAY_AUTH_TOKEN_PATH"]).expanduser()
    return Path(env.get("HOME") or Path.home()) / ".ray" / "auth_token"


def check_token_auth(env: dict[str, str], required: bool) -> None:
    """Token authentication on (when `required`) with a token only its owner can read; else one line."""
    if env.get("RAY_AUTH_MODE", "").lower() != "token":
        if required:
            raise PipelineError(
                "a Ray cluster across machines needs token authentication: `export RAY_AUTH_MODE=token` "
                f"with the cluster's token in ~/.ray/auth_token (mode 600) on every node and driver ({DOCS})"
            )
        return
    if env.get("RAY_AUTH_TOKEN"):
        return
    path = token_path(env)
    if not path.is_file() or not path.read_text().strip():
        raise PipelineError(
            f"RAY_AUTH_MODE=token but no token in {path}: make one on the head with "
            f"`(umask 077 && ray get-auth-token --generate >/dev/null)` and copy it to every node ({DOCS})"
        )
    if path.stat().st_mode & 0o077:
        raise PipelineError(f"the Ray token {path} is readable by others: `chmod 600 {path}`")


def ray_executable() -> str:
    found = shutil.which("ray", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    if found is None:
        raise PipelineError("ray: not found; install the cluster extra: pip install -e '.[cluster]'")
    return found


def start_command(node: Node, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """`ray start`'s arguments for `node`, and what its environment needs on top of `env`."""
    if node.head == bool(node.address):
        raise PipelineError("give --head (start a cluster) or --address HEAD:PORT (join one), not both")
    if node.address and not node.across_machines:
        raise PipelineError(
            "a local Ray cluster (bound to 127.0.0.1) has one node: Ray will not add another to it; for more "
            f"machines start the head with --node-ip-address <private ip> and token authentication ({DOCS})"
        )
    check_token_auth(env, required=node.across_machines)
    command = [ray_executable(), "start", "--disable-usage-stats"]
    if node.head:
        command += ["--head", "--port", str(node.port), "--include-dashboard", "false", "--dashboard-host", "127.0.0.1"]
    else:
        command += ["--address", str(node.address)]
    command += ["--node-ip-address", node.node_ip_address if node.across_machines else "127.0.0.1"]
    if node.num_cpus is not None:
        command += ["--num-cpus", str(node.num_cpus)]
    if node.temp_dir:
        command += ["--temp-dir", str(node.temp_dir)]
    if node.client_server_port:
        command += ["--ray-client-server-port", str(node.client_server_port)]
    return command, ({} if node.across_machines else dict(LOCAL_ONLY))


def start(node: Node, env: dict[str, str] | None = None, capture: bool = False, timeout: float = 180) -> str:
    """Run `ray start` for `node`; returns the cluster's address (HEAD:PORT) for drivers and other nodes.

    With `capture`, Ray's output is kept and only its last lines come back, in the error, if it fails."""
    env = dict(os.environ if env is None else env)
    command, extra = start_command(node, env)
    done = subprocess.run(command, env={**env, **extra}, capture_output=capture, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = " | ".join((done.stdout or "").strip().splitlines()[-3:] + (done.stderr or "").strip().splitlines()[-3:])
        raise PipelineError(f"`ray start` failed (exit {done.returncode}){': ' + tail if tail else ''}")
    if node.address:
        return str(node.address)
    return f"{node.node_ip_address if node.across_machines else '127.0.0.1'}:{node.port}"


def default_temp_dir() -> str:
    """Ray's own default: $RAY_TMPDIR/ray, else $TMPDIR/ray, else /tmp/ray (Linux)."""
    return str(Path(os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp") / "ray")


def cluster_pids(temp_dir: str) -> list[int]:
    """The Ray processes that hold a file under `temp_dir` open (its logs, sockets): one cluster's."""
    spec = importlib.util.find_spec("ray")
    ray_dir = str(Path(spec.origin).parent) if spec and spec.origin else None
    root = str(Path(temp_dir).resolve()) + os.sep
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            is_ray = argv[0].startswith("ray::") or any(
                (ray_dir and arg.startswith(ray_dir)) or arg.startswith("ray.") for arg in argv
            )
            if is_ray and any(os.readlink(fd).startswith(root) for fd in (entry / "fd").iterdir()):
                found.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def alive(pid: int) -> bool:
    """Running: not gone, and not a zombie waiting for its parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def stop(temp_dir: str | None = None, grace: float = 5) -> int:
    """Stop the processes of the Ray cluster using `temp_dir` (SIGTERM, then SIGKILL after `grace`
    seconds), leaving other clusters on the machine alone; returns how many there were."""
    if not Path("/proc").is_dir():
        raise PipelineError("--stop reads /proc (Linux); elsewhere use `ray stop`")
    pids = cluster_pids(temp_dir or default_temp_dir())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(map(alive, pids)):
        time.sleep(0.2)
    for pid in filter(alive, pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)
