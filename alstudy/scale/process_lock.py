"""One process per unit of work (a cell, a grid), whatever gets killed.

A unit holds an OS file lock (`fcntl.flock`) on a lock file for as long as it runs: the
kernel releases it when the holder dies, SIGKILL included, so no stale lock is ever left.
The file also says who holds it (pid, start time, and the process that started it), so a
second process can tell the two cases apart:

- the holder is alive and its starter too: the second process stops in one line naming
  the unit and the holder;
- the holder's starter is gone (`kill -9` of `dvc repro` leaves the cell's Python running
  as an orphan, and DVC then forgets the stage was running): the orphan is stopped, and the
  second process goes on once the kernel has released its lock, resuming from the last
  round checkpoint, so no round is logged twice.

A cell run under DVC also watches DVC itself (`stop_when_orphaned`): an orphan stops on its
own within a second or two, without waiting for a rerun to find it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from alstudy.errors import PipelineError

log = logging.getLogger("lock")
# Shells that DVC (or a user) may put between a starter and the cell: `sh -c "python -m stages.al ..."`.
SHELLS = {"sh", "bash", "dash", "zsh", "fish", "ksh"}
STOP_GRACE_S = 20.0  # how long an orphan gets to stop on SIGTERM before SIGKILL
WATCH_EVERY_S = 1.0


@dataclass(frozen=True)
class Process:
    """A process, told apart from a later one that reuses its pid by its start time."""

    pid: int
    started: int  # clock ticks since boot (/proc/<pid>/stat, field 22)
    command: str

    def alive(self) -> bool:
        return _start_ticks(self.pid) == self.started


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: written into the lock file by its holder."""

    process: Process
    host: str
    since: float  # wall-clock time the lock was taken
    starter: Process | None  # the `dvc` process that started it, if any

    def orphaned(self) -> bool:
        return self.starter is not None and not self.starter.alive()

    def describe(self) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(self.since))
        by = f", started by `{self.starter.command}` (pid {self.starter.pid})" if self.starter else ""
        return f"process {self.process.pid} on {self.host} since {when}{by}"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after its closing one.
    return text[text.rindex(")") + 2 :].split()


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of the whole line


def _parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None  # field 4


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def process(pid: int) -> Process | None:
    started = _start_ticks(pid)
    if started is None:
        return None
    return Process(pid, started, " ".join(Path(a).name if i < 2 else a for i, a in enumerate(_argv(pid)[:4])))


def _is_dvc(argv: list[str]) -> bool:
    """`dvc ...`, `python .../bin/dvc ...` or `python -m dvc ...`."""
    names = [Path(a).name for a in argv[:3]]
    return bool(names) and (names[0] == "dvc" or (len(names) > 1 and names[1] == "dvc") or names[1:3] == ["-m", "dvc"])


def dvc_starter(pid: int | None = None) -> Process | None:
    """The `dvc` process that started this one (through shells in between), if any."""
    parent = _parent(pid or os.getpid())
    for _ in range(4):  # the cell's parent, or a shell or two above it
        if not parent or parent <= 1:
            return None
        argv = _argv(parent)
        if _is_dvc(argv):
            return process(parent)
        if not argv or Path(argv[0]).name not in SHELLS:
            return None
        parent = _parent(parent)
    return None


def read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(Path(path).read_text() or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        starter = data.get("starter")
        return Holder(Process(**data["process"]), data["host"], data["since"], Process(**starter) if starter else None)
    except (KeyError, TypeError):
        return None


def _stop(holder: Holder, what: str, handle) -> None:
    """Stop an orphaned holder and wait for the kernel to hand its lock over."""
    pid = holder.process.pid
    log.warning(
        "%s: %s was left running after its starter died; stopping it (its finished rounds are checkpointed)",
        what,
        holder.describe(),
    )
    for sig in (signal.SIGTERM, signal.SIGCONT):  # SIGCONT: a stopped process acts on SIGTERM only once resumed
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
    deadline = time.monotonic() + STOP_GRACE_S
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline and holder.process.alive():
                os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.1)


@contextmanager
def hold(path: Path, what: str, *, rerun_hint: str = "rerun") -> Iterator[Holder]:
    """Hold the lock at `path` for the block; `what` names the unit in messages ("al@fashion_mnist-margin-0").

    A live holder: one line naming it. An orphaned one (its `dvc` starter is gone): stopped first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(path)
            if holder is None or holder.host != socket.gethostname() or not holder.orphaned():
                who = holder.describe() if holder else "another process"
                raise PipelineError(
                    f"{what}: already running in {who}; wait for it to finish, or stop it "
                    f"(kill {holder.process.pid if holder else '<pid>'}) and {rerun_hint}"
                ) from None
            _stop(holder, what, handle)
        me = Holder(process(os.getpid()), socket.gethostname(), time.time(), dvc_starter())
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(asdict(me)))
        handle.flush()
        yield me
    finally:
        handle.close()  # releases the lock; the file stays, so a waiting process locks the same inode


def stop_when_orphaned(what: str, starter: Process | None) -> None:
    """If `starter` (the `dvc` that started this cell) dies, end this process: DVC has forgotten the
    stage, and a rerun would otherwise resume into the run this process is still logging to."""
    if starter is None:
        return

    def watch() -> None:
        while starter.alive():
            time.sleep(WATCH_EVERY_S)
        log.warning(
            "%s: `%s` (pid %d) that started this run is gone; stopping, a rerun resumes from the last round",
            what,
            starter.command,
            starter.pid,
        )
        logging.shutdown()
        os._exit(3)  # from a thread, and mid-round: the last round's checkpoint was written atomically

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()
