"""One process per cell: the lock's holder is named, released by the kernel when it dies, and an
orphan of a killed `dvc` is stopped (by the next process, or by itself)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from alstudy.errors import PipelineError
from alstudy.scale import process_lock

# A child that takes the lock, says so on stdout, and sleeps; `watch` makes it stop when its dvc dies.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from alstudy.scale import process_lock
    path, watch = sys.argv[1], sys.argv[2] == "watch"
    with process_lock.hold(path, "al@toy-margin-0") as me:
        if watch:
            process_lock.stop_when_orphaned("al@toy-margin-0", me.starter)
        print("holding", flush=True)
        time.sleep(120)
    """
)
# A stand-in for `dvc repro`: a file named dvc that starts the holder and waits for it, as DVC runs a stage.
FAKE_DVC = textwrap.dedent(
    """
    import subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3]])
    print(child.pid, flush=True)
    child.wait()
    """
)


def start_holder(tmp_path: Path, lock: Path, *, under_dvc: bool, watch: bool = False) -> tuple[subprocess.Popen, int]:
    """The holder (under a fake dvc, or directly); returns the outer process and the holder's pid once it holds."""
    if under_dvc:
        dvc = tmp_path / "dvc"
        dvc.write_text(FAKE_DVC)
        outer = subprocess.Popen(
            [sys.executable, str(dvc), HOLDER, str(lock), "watch" if watch else "-"], stdout=subprocess.PIPE, text=True
        )
        holder_pid = int(outer.stdout.readline())
    else:
        outer = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(lock), "watch" if watch else "-"], stdout=subprocess.PIPE, text=True
        )
        holder_pid = outer.pid
    deadline = time.monotonic() + 60
    while (holder := process_lock.read_holder(lock)) is None or holder.process.pid != holder_pid:
        assert time.monotonic() < deadline, "the holder never took the lock"
        time.sleep(0.05)
    return outer, holder_pid


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        proc = process_lock.process(pid)
        if proc is None or Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return True
        time.sleep(0.05)
    return False


def test_a_second_process_stops_in_one_line_naming_the_holder(tmp_path):
    lock = tmp_path / "cell.lock"
    outer, pid = start_holder(tmp_path, lock, under_dvc=False)
    try:
        with pytest.raises(PipelineError) as error:
            with process_lock.hold(lock, "al@toy-margin-0", rerun_hint="rerun `dvc repro`"):
                pass
        message = str(error.value)
        assert "\n" not in message
        assert message.startswith(f"al@toy-margin-0: already running in process {pid} on ")
        assert f"(kill {pid}) and rerun `dvc repro`" in message
    finally:
        outer.kill()
        outer.wait()


def test_the_kernel_releases_the_lock_of_a_killed_holder(tmp_path):
    lock = tmp_path / "cell.lock"
    outer, pid = start_holder(tmp_path, lock, under_dvc=False)
    os.kill(pid, signal.SIGKILL)
    outer.wait()
    with process_lock.hold(lock, "al@toy-margin-0") as me:
        assert me.process.pid == os.getpid()
        assert process_lock.read_holder(lock).process.pid == os.getpid()


def test_an_orphan_of_a_killed_dvc_is_stopped_before_the_next_process_goes_on(tmp_path, caplog):
    lock = tmp_path / "cell.lock"
    outer, pid = start_holder(tmp_path, lock, under_dvc=True)  # no watch: the next process must find it
    holder = process_lock.read_holder(lock)
    assert holder.starter is not None and holder.starter.pid == outer.pid and not holder.orphaned()
    os.kill(pid, signal.SIGSTOP)  # as stuck as an orphan gets: it acts on nothing until SIGCONT
    outer.kill()  # kill -9 of `dvc repro`, not of the cell
    outer.wait()
    assert process_lock.process(pid) is not None, "the orphan should outlive its dvc"
    with process_lock.hold(lock, "al@toy-margin-0"):
        assert gone(pid, within=1)
    assert "was left running after its starter died; stopping it" in caplog.text


def test_an_orphan_stops_by_itself_when_its_dvc_dies(tmp_path):
    lock = tmp_path / "cell.lock"
    outer, pid = start_holder(tmp_path, lock, under_dvc=True, watch=True)
    outer.kill()
    outer.wait()
    assert gone(pid, within=10), "the orphan kept running after its dvc died"
    with process_lock.hold(lock, "al@toy-margin-0"):
        pass


def test_a_holder_not_started_by_dvc_has_no_starter_to_watch(tmp_path):
    with process_lock.hold(tmp_path / "x.lock", "unit") as me:
        assert me.starter is None  # pytest is no dvc: nothing to watch, nothing that counts as orphaned
