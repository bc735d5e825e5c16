"""CPU time and memory of a set of processes, read from /proc (Linux).

CPU per request = (utime + stime of every process of a service after a run) - (the same before), divided by
the requests of the run. utime/stime in /proc/PID/stat count every thread of the process, in clock ticks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_stat(text: str) -> tuple[int, int]:
    """``(utime, stime)`` in clock ticks from one ``/proc/PID/stat`` line.

    The command name (2nd field) is in parentheses and may contain spaces or ')', so fields are counted
    after the LAST ')': state is field 3, utime field 14, stime field 15.
    """
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def parse_status_kib(text: str, key: str) -> int | None:
    """The value in KiB of a ``Key:   1234 kB`` line of /proc/PID/status or smaps_rollup; None when absent."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    return None


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:  # exited, or not ours to read (smaps_rollup of another user's process)
        return None


def parse_machine_cpu(text: str) -> tuple[int, int]:
    """``(busy, total)`` clock ticks of all CPUs from /proc/stat's first line (busy = total - idle - iowait).

    The rest of the machine's work during a run (another test suite, a build) shows as busy time that no
    measured process used: the benchmark reports it, so a disturbed run can be told from a slow one.
    """
    line = next(row for row in text.splitlines() if row.startswith("cpu "))
    # user nice system idle iowait irq softirq steal [guest guest_nice: already counted in user/nice]
    values = [int(value) for value in line.split()[1:9]]
    total = sum(values)
    return total - values[3] - values[4], total


def machine_cpu() -> tuple[int, int]:
    """``(busy, total)`` ticks of the whole machine now (see ``parse_machine_cpu``)."""
    with open("/proc/stat") as handle:
        return parse_machine_cpu(handle.read())


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime (ticks) of each pid still alive."""
    ticks = {}
    for pid in pids:
        text = _read(f"/proc/{pid}/stat")
        if text is not None:
            user, system = parse_stat(text)
            ticks[pid] = user + system
    return ticks


def cpu_ms(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU milliseconds the processes used between two ``cpu_ticks`` samples.

    A process that appears only in ``after`` (started during the run) counts from zero; one that exited during
    the run is lost (its time goes to its parent's cutime, which we do not read), so callers check the pid set.
    """
    ticks = sum(after[pid] - before.get(pid, 0) for pid in after)
    return ticks * 1000.0 / CLOCK_TICKS


@dataclass(frozen=True)
class Memory:
    """Resident memory of a set of processes in MiB: RSS summed (shared pages counted in every process) and
    PSS (shared pages divided among their sharers, so it adds up), None when smaps_rollup was unreadable."""

    processes: int
    rss_mib: float
    pss_mib: float | None


def memory(pids: list[int]) -> Memory:
    """RSS and PSS of the processes now."""
    rss_kib = 0
    pss_kib: int | None = 0
    alive = 0
    for pid in pids:
        status = _read(f"/proc/{pid}/status")
        rss = parse_status_kib(status, "VmRSS") if status else None
        if rss is None:
            continue
        alive += 1
        rss_kib += rss
        rollup = _read(f"/proc/{pid}/smaps_rollup")
        pss = parse_status_kib(rollup, "Pss") if rollup else None
        pss_kib = None if pss is None or pss_kib is None else pss_kib + pss
    return Memory(alive, rss_kib / 1024.0, None if pss_kib is None else pss_kib / 1024.0)
