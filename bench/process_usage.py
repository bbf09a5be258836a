"""CPU seconds and peak memory of groups of processes over a window, read from /proc.

bench/fanout.py charges the cycle's CPU to the processes that did the work. Three kinds of
group, each counted the way that is exact (or nearly) for it:

- a session: a process started with `start_new_session=True` and everything it forks (gunicorn's
  master and workers). Its CPU is the sum over its live processes of their own time plus that of
  the children they reaped, at the end of the window minus at the start. That is exact as long as
  the session's first process lives: a gunicorn worker that dies and is reaped by the master
  moves its time into the master's `cutime`.
- the backends of one PostgreSQL database (by the process title PostgreSQL sets, e.g.
  "postgres: 15/main: postgres bench_fanout 127.0.0.1(4711) idle"). They are the postmaster's
  children, not ours, and the postmaster's `cutime` mixes every database on the server, so each
  backend is sampled: last sample minus first (0 for one that started in the window). /proc is
  scanned for new processes every 0.5 s and the known ones are read every 0.1 s, so a backend
  that exits (PgBouncer replaces its server connections every `server_lifetime`) loses at
  most 0.1 s of its CPU.
- PostgreSQL's own background processes (postmaster, checkpointer, writers): server-wide, shared
  with anyone else using this server, so reported apart.

Peak RSS is VmHWM (the kernel's high-water mark of resident memory) per process; for a group we
report its largest process and the sum over its processes.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POSTGRES_BACKGROUND = {
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum launcher",
    "logical replication launcher",
    "archiver",
    "stats collector",
}


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    parent: int
    session: int
    own_cpu: float  # seconds, utime + stime
    reaped_cpu: float  # seconds, cutime + cstime: children it has waited for


def read_stat(pid: int) -> ProcStat | None:
    """One process's /proc/<pid>/stat, or None if it is gone."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    head, _, tail = text.rpartition(")")  # the name may hold spaces and parentheses
    fields = tail.split()  # fields[0] is field 3 of proc(5), "state"
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return ProcStat(
        pid=pid,
        comm=head.partition("(")[2],
        parent=int(fields[1]),
        session=int(fields[3]),
        own_cpu=(utime + stime) / CLOCK_TICKS,
        reaped_cpu=(cutime + cstime) / CLOCK_TICKS,
    )


def peak_rss_kib(pid: int) -> int:
    """VmHWM of the process in KiB (0 once it has exited)."""
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _read(path: str) -> str:
    # os.open rather than pathlib: a sample reads every process's stat, and this is twice
    # as fast, which keeps the meter's own CPU (charged to the bench process) small.
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return ""
    try:
        return os.read(descriptor, 8192).decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(descriptor)


def postgres_title(stat: ProcStat) -> str:
    """What PostgreSQL says the process is, after 'postgres: <cluster>: '; "" for a backend
    that has not set its title yet."""
    text = _read(f"/proc/{stat.pid}/cmdline").replace("\0", " ").strip()
    if text.startswith("postgres:"):
        return text.rsplit(": ", 1)[-1].strip()
    parent = read_stat(stat.parent)
    # The postmaster keeps the binary's command line; so does a backend it just forked.
    return "" if parent is not None and parent.comm == "postgres" else "postmaster"


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of every core since boot, from /proc/stat."""
    values = [int(v) for v in _read("/proc/stat").split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # user .. steal; guest time is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def session_cpu(session: int) -> tuple[int, float]:
    """How many processes the session has, and their CPU seconds (reaped children included)."""
    count, cpu = 0, 0.0
    for name in os.listdir("/proc"):
        stat = read_stat(int(name)) if name.isdigit() else None
        if stat is not None and stat.session == session:
            count += 1
            cpu += stat.own_cpu + stat.reaped_cpu
    return count, cpu


@dataclass
class GroupUsage:
    cpu_seconds: float = 0.0
    largest_rss_kib: int = 0
    total_rss_kib: int = 0  # sum of every process's peak: an upper bound of the group's peak
    processes: int = 0


@dataclass
class Usage:
    """What a window saw."""

    groups: dict[str, GroupUsage]
    seconds: float
    machine_busy: float  # CPU seconds, every core, every process on the machine
    machine_total: float  # CPU seconds the machine had (cores x seconds)
    this_process: float  # CPU seconds of the process that ran the meter
    reaped_children: float  # CPU seconds of its children that ended (and were reaped) meanwhile


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@dataclass
class _Seen:
    """What a sampled process looked like: its first and latest CPU, its peak RSS."""

    group: str
    first_cpu: float
    last_cpu: float
    peak_rss_kib: int = 0
    alive: bool = True


@dataclass
class UsageMeter:
    """Samples every `interval` seconds in a thread between start() and stop()."""

    database: str  # the PostgreSQL database whose backends count as ours
    sessions: dict[str, int] = field(default_factory=dict)  # group name -> session id
    interval: float = 0.1  # known processes read this often
    scan_every: int = 5  # intervals between two scans of /proc for new processes
    excluded: set[int] = field(default_factory=set)  # e.g. the bench's own backend

    POSTGRES = "PostgreSQL backends"
    POSTGRES_BACKGROUND = "PostgreSQL background (server-wide)"

    def __post_init__(self) -> None:
        self._seen: dict[int, _Seen] = {}
        self._session_cpu_at_start: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usage-meter", daemon=True)
        self._machine_at_start = (0.0, 0.0)

    def add_session(self, name: str, session: int) -> None:
        """Count a session started after start() (its CPU at the start was 0)."""
        with self._lock:
            self.sessions[name] = session
            self._session_cpu_at_start[name] = 0.0

    def start(self) -> None:
        with self._lock:
            totals = self._sample(first=True)
            self._session_cpu_at_start = {name: totals.get(name, 0.0) for name in self.sessions}
            self._machine_at_start = machine_busy_seconds()
            self._self_at_start = _cpu(resource.RUSAGE_SELF)
            self._children_at_start = _cpu(resource.RUSAGE_CHILDREN)
            self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> Usage:
        """Usage per group over the window, and the rest of what the window saw."""
        self._stopping.set()
        self._thread.join(10)
        with self._lock:
            totals = self._sample(first=False)
            busy, total = machine_busy_seconds()
            groups: dict[str, GroupUsage] = {}
            for name in self.sessions:
                cpu = totals.get(name, 0.0) - self._session_cpu_at_start[name]
                groups[name] = GroupUsage(cpu)
            for seen in self._seen.values():
                group = groups.setdefault(seen.group, GroupUsage())
                if seen.group in (self.POSTGRES, self.POSTGRES_BACKGROUND):
                    group.cpu_seconds += seen.last_cpu - seen.first_cpu
                group.largest_rss_kib = max(group.largest_rss_kib, seen.peak_rss_kib)
                group.total_rss_kib += seen.peak_rss_kib
                group.processes += 1
        return Usage(
            groups=groups,
            seconds=time.monotonic() - self._started,
            machine_busy=busy - self._machine_at_start[0],
            machine_total=total - self._machine_at_start[1],
            this_process=_cpu(resource.RUSAGE_SELF) - self._self_at_start,
            reaped_children=_cpu(resource.RUSAGE_CHILDREN) - self._children_at_start,
        )

    def _run(self) -> None:
        intervals = 0
        while not self._stopping.wait(self.interval):
            intervals += 1
            with self._lock:
                if intervals % self.scan_every == 0:
                    self._sample(first=False)
                else:
                    self._read_known()

    def _read_known(self) -> None:
        for pid, seen in self._seen.items():
            if seen.alive:
                stat = read_stat(pid)
                if stat is None:
                    seen.alive = False
                else:
                    seen.last_cpu = stat.own_cpu

    def _sample(self, first: bool) -> dict[str, float]:
        """Update what was seen; return each session's CPU now (live processes only)."""
        by_session = {session: name for name, session in self.sessions.items()}
        totals: dict[str, float] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) in self.excluded:
                continue
            stat = read_stat(int(entry.name))
            if stat is None:
                continue
            group = by_session.get(stat.session) or self._postgres_group(stat)
            if group is None:
                continue
            if stat.session in by_session:
                totals[group] = totals.get(group, 0.0) + stat.own_cpu + stat.reaped_cpu
            seen = self._seen.get(stat.pid)
            if seen is None:
                # Present at the start: counted from there; born in the window: from zero.
                seen = _Seen(group, stat.own_cpu if first else 0.0, stat.own_cpu)
                self._seen[stat.pid] = seen
            seen.last_cpu = stat.own_cpu
            seen.peak_rss_kib = max(seen.peak_rss_kib, peak_rss_kib(stat.pid))
        return totals

    def _postgres_group(self, stat: ProcStat) -> str | None:
        if stat.comm != "postgres":
            return None
        seen = self._seen.get(stat.pid)
        if seen is not None:
            return seen.group
        title = postgres_title(stat)
        if self.database in title.split():
            return self.POSTGRES  # "postgres <db> 127.0.0.1(port) idle", "autovacuum worker <db>"
        if title in POSTGRES_BACKGROUND or title == "postmaster":
            return self.POSTGRES_BACKGROUND
        return None  # another database's backend, or one not yet titled (seen next time)
