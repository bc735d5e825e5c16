"""local_system.processes: a process that dies during start-up is reported with its own output and how it ended."""

from __future__ import annotations

import sys
import time

from local_system.processes import exit_status, is_alive, log_offset, read_pid, spawn, tail


def _spawn_and_wait(tmp_path, code: str) -> tuple[int, object]:
    log, pid_file = tmp_path / "part.log", tmp_path / "part.pid"
    log.write_text("a line of the previous run\n" * 3)
    pid = spawn([sys.executable, "-c", code], log, {}, tmp_path, pid_file)
    deadline = time.monotonic() + 10
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid, pid_file


def test_tail_from_the_offset_shows_only_the_new_process_output(tmp_path):
    """The pid file records where the new output starts; the previous run's lines are not shown as this one's."""
    pid, pid_file = _spawn_and_wait(tmp_path, "print('starting'); print('cannot bind')")
    assert read_pid(pid_file) == pid
    assert tail(tmp_path / "part.log", 25, log_offset(pid_file)).splitlines() == ["starting", "cannot bind"]


def test_exit_status_tells_an_exit_code_from_a_signal(tmp_path):
    """A child that exited with 3 says so; one killed by SIGKILL says signal 9; a second look says nothing."""
    pid, _ = _spawn_and_wait(tmp_path, "raise SystemExit(3)")
    assert exit_status(pid) == "exit status 3"
    assert exit_status(pid) == ""  # reaped: nothing more to tell
    killed, _ = _spawn_and_wait(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert exit_status(killed) == "killed by signal 9"


def test_an_old_pid_file_without_an_offset_reads_as_the_whole_log(tmp_path):
    """Pid files written before the offset was recorded still work."""
    pid_file = tmp_path / "old.pid"
    pid_file.write_text("12345\n")
    assert (read_pid(pid_file), log_offset(pid_file)) == (12345, 0)
