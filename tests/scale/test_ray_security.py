"""A Ray cluster started as docs/user-guide/ray-cluster.md says (`alstudy ray-start`) is not open to others.

The local cluster: every socket that any of its processes (GCS, raylet, agents, client server, a worker,
the driver) listens on is bound to loopback. Token authentication: a driver without the cluster's
token, or with another, is refused; one with it runs a task.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest
from services import free_port

from alstudy.scale import ray_node

pytestmark = [pytest.mark.slow, pytest.mark.ray]

BIN = Path(sys.executable).parent
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}  # the last: IPv4's loopback on a dual-stack socket
DRIVER = """
import sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)

@ray.remote
class Worker:
    def answer(self):
        return 42

worker = Worker.remote()  # a worker process that stays up, with the sockets workers open
print("answer", ray.get(worker.answer.remote()), flush=True)
sys.stdin.read()  # until the test is done looking
"""


def base_env(home: Path) -> dict[str, str]:
    """This environment without PYTHONPATH or any RAY_AUTH_*, with its own HOME (~/.ray/auth_token)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("RAY_AUTH")}
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "HOME": str(home), "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}


def ray_start(args: list[str], env: dict[str, str]) -> None:
    """The docs' command, with the test's port, CPUs and short temp dir."""
    done = subprocess.run([str(BIN / "alstudy"), "ray-start", *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def connect(address: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A driver that connects and runs a task; it gives up on a refusing cluster after about 2 s."""
    script = "import sys, ray; ray.init(address=sys.argv[1]); print('answer', ray.get(ray.remote(lambda: 42).remote()))"
    env = {**env, **ray_node.driver_env(address), "RAY_NUM_REDIS_GET_RETRIES": "2"}
    return subprocess.run([sys.executable, "-c", script, address], env=env, capture_output=True, text=True, timeout=120)


def listening(pids: list[int]) -> list[tuple[int, str, str, int]]:
    """(pid, process name, address, port) of each listening TCP socket and each unconnected UDP one."""
    found = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for conn in process.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN or (conn.type == 2 and not conn.raddr):  # 2: SOCK_DGRAM
                    found.append((pid, process.name(), conn.laddr.ip, conn.laddr.port))
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture
def temp_dir():
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    yield folder
    ray_node.stop(folder, grace=2)  # this cluster's processes only, whatever the test did
    shutil.rmtree(folder, ignore_errors=True)


def test_a_local_cluster_listens_on_loopback_only(tmp_path, temp_dir):
    env = base_env(tmp_path / "home")
    port, client_port = free_port(), free_port()
    ray_start(
        ["--head", "--port", str(port), "--num-cpus", "1", "--temp-dir", temp_dir]
        + ["--client-server-port", str(client_port)],
        env,
    )
    address = f"127.0.0.1:{port}"
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, address],
        env={**env, **ray_node.driver_env(address)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        ready, _, _ = select.select([driver.stdout], [], [], 120)  # Ray's own lines go to stderr
        answer = driver.stdout.readline().strip() if ready else "(nothing in 120 s)"
        assert answer == "answer 42", answer + "\n" + (tmp_path / "driver.log").read_text()[-3000:]
        sockets = listening(ray_node.cluster_pids(temp_dir) + [driver.pid])
    finally:
        driver.kill()
        driver.wait()
        log.close()
    names = {name for _, name, _, _ in sockets}
    ports = {bound for *_, bound in sockets}
    # The ones that must be there: the GCS at the port asked, the client server, the raylet, the worker.
    assert port in ports and client_port in ports, sockets
    assert {"gcs_server", "raylet"} <= names and any(name.startswith("ray::Worker") for name in names), sockets
    exposed = [entry for entry in sockets if entry[2] not in LOOPBACK]
    assert not exposed, f"bound beyond loopback: {exposed}"


def test_token_authentication_refuses_a_driver_without_the_token(tmp_path, temp_dir):
    env = base_env(tmp_path / "head-home")
    # The docs' token: ~/.ray/auth_token, made by Ray, readable by its owner alone.
    subprocess.run(["sh", "-c", "umask 077 && ray get-auth-token --generate >/dev/null"], env=env, check=True)
    token = tmp_path / "head-home/.ray/auth_token"
    assert token.stat().st_mode & 0o777 == 0o600
    env["RAY_AUTH_MODE"] = "token"
    port = free_port()
    ray_start(
        ["--head", "--port", str(port), "--num-cpus", "1", "--temp-dir", temp_dir]
        + ["--client-server-port", str(free_port())],
        env,
    )
    address = f"127.0.0.1:{port}"

    stranger = base_env(tmp_path / "stranger-home")
    refused = connect(address, stranger)
    assert refused.returncode != 0 and "answer" not in refused.stdout, refused.stdout + refused.stderr
    assert "Authentication token is missing or incorrect" in refused.stderr, refused.stderr[-3000:]
    wrong = connect(address, {**stranger, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64})
    assert wrong.returncode != 0 and "answer" not in wrong.stdout, wrong.stdout + wrong.stderr

    allowed = connect(address, env)
    assert allowed.returncode == 0 and "answer 42" in allowed.stdout, allowed.stdout + allowed.stderr[-3000:]
