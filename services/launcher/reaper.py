"""The reaper: ends the servers a process started when that process ends, however it ends
(SIGKILL, a crash, a second Ctrl-C). The launcher, the test harness and the benchmarks register
each server they start with `REAPER`."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# The reaper
#
# A process that starts servers stops them on the way out (the launcher on Ctrl-C, SIGTERM and
# SIGHUP; pytest in its fixtures' teardown). It cannot when it is killed with SIGKILL, crashes or
# is stopped half way, and its children then live on: the broker and the services run in
# sessions of their own (so a terminal's Ctrl-C reaches only the launcher), and pg_ctl
# daemonises the PostgreSQL postmaster. PR_SET_PDEATHSIG cannot cover this: it fires when the
# *thread* that forked a child ends (servers are started from worker threads), and not at all
# for the postmaster, whose parent is a pg_ctl that has long exited.
#
# So the first process we watch starts a small reaper process in a session of its own, fed
# through a pipe whose writing end only this process holds. The kernel closes that end when this
# process ends, whatever the cause; the reaper reads end-of-file and stops every process still
# registered: the stop signal first (PostgreSQL: SIGINT, a fast shutdown), SIGKILL to the whole
# process group after the grace period. Processes stopped normally are unregistered first, and
# each registration carries the process's start time, so a reused pid is never signalled.


@dataclass(frozen=True)
class _Watched:
    pid: int
    started: str
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); '-' if unknown."""
    stop_signal: int
    grace: float
    group: bool

    def line(self) -> str:
        return (
            f"watch {self.pid} {self.started} {self.stop_signal} {self.grace} {int(self.group)}\n"
        )

    @classmethod
    def parse(cls, words: list[str]) -> _Watched:
        pid, started, stop_signal, grace, group = words
        return cls(int(pid), started, int(stop_signal), float(grace), group == "1")

    def alive(self) -> bool:
        """The same process still runs (not exited, not a zombie, its pid not reused)."""
        state = process_state(self.pid)
        if state is None:
            return False
        status, started = state
        return status != "Z" and (self.started == "-" or started == self.started)

    def pid_free(self) -> bool:
        """No process at all has this pid (so neither does a process group of that id belong to
        anyone else)."""
        return process_state(self.pid) is None


def process_state(pid: int) -> tuple[str, str] | None:
    """(state letter, start time) of a live process, None if there is none. Without /proc (not
    Linux), the state is 'R' and the start time '-'."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "R", "-"
    # The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], fields[19]


def _start_time(pid: int) -> str:
    state = process_state(pid)
    return state[1] if state else "-"


def _signal(pid: int, signum: int, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def _reap(watched: Iterable[_Watched]) -> None:
    """Stop every process in `watched` (newest first), then SIGKILL what outlives its grace."""
    pending = [entry for entry in reversed(list(watched)) if entry.alive()]
    started = time.monotonic()
    for entry in pending:
        _signal(entry.pid, entry.stop_signal, group=False)
    while pending:
        time.sleep(0.1)
        now = time.monotonic() - started
        for entry in list(pending):
            if not entry.alive():
                pending.remove(entry)
                if entry.group and entry.pid_free():
                    _signal(entry.pid, signal.SIGKILL, group=True)  # stragglers in its group
            elif now > entry.grace:
                pending.remove(entry)
                _signal(entry.pid, signal.SIGKILL, group=entry.group)


def reaper_main() -> None:
    """The reaper process: `watch ...`, `forget PID`, `delete PATH` and `keep PATH` lines on
    stdin; end-of-file means the process that started it is gone."""
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    watched: dict[int, _Watched] = {}
    directories: set[str] = set()
    for line in sys.stdin:
        command, _, argument = line.rstrip("\n").partition(" ")
        try:
            if command == "watch":
                entry = _Watched.parse(argument.split())
                watched[entry.pid] = entry
            elif command == "forget":
                watched.pop(int(argument), None)
            elif command == "delete":
                directories.add(argument)
            elif command == "keep":
                directories.discard(argument)
        except ValueError:  # a garbled line: keep the rest
            continue
    _reap(watched.values())
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)


class Reaper:
    """This process's reaper (see above); `REAPER` is the one to use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._owner = 0
        self._watched: dict[int, _Watched] = {}
        self._directories: set[str] = set()

    def watch(
        self,
        pid: int,
        *,
        stop_signal: int = signal.SIGTERM,
        grace: float = 10.0,
        group: bool = True,
    ) -> None:
        """Stop `pid` with `stop_signal` if this process ends while it runs; SIGKILL it (its
        whole process group if `group`: it must lead one) after `grace` seconds."""
        entry = _Watched(pid, _start_time(pid), int(stop_signal), grace, group)
        with self._lock:
            self._watched[pid] = entry
            self._send(entry.line())

    def forget(self, pid: int) -> None:
        """`pid` was stopped (or is about to be, by its owner): leave it alone."""
        with self._lock:
            if self._watched.pop(pid, None) is not None:
                self._send(f"forget {pid}\n")

    def delete_after(self, directory: Path) -> None:
        """Delete `directory` (a server's scratch data) once the processes are stopped, should
        this process end before it calls `keep` (having deleted it itself)."""
        path = str(directory)
        if "\n" in path:
            return
        with self._lock:
            self._directories.add(path)
            self._send(f"delete {path}\n")

    def keep(self, directory: Path) -> None:
        path = str(directory)
        with self._lock:
            if path in self._directories:
                self._directories.discard(path)
                self._send(f"keep {path}\n")

    def _send(self, line: str) -> None:
        for _ in range(2):
            process = self._running()
            assert process.stdin is not None
            try:
                process.stdin.write(line)
                process.stdin.flush()
                return
            except (BrokenPipeError, ValueError):  # someone killed the reaper: start another
                self._process = None

    def _running(self) -> subprocess.Popen[str]:
        if self._process is not None and self._owner == os.getpid():
            return self._process
        # First use (or a forked child, whose parent's pipe is not its own): a reaper of our own.
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from services.launcher.reaper import reaper_main; reaper_main()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # neither a terminal's Ctrl-C nor a kill of our group ends it
        )
        self._owner = os.getpid()
        assert self._process.stdin is not None
        for entry in self._watched.values():
            self._process.stdin.write(entry.line())
        for path in self._directories:
            self._process.stdin.write(f"delete {path}\n")
        self._process.stdin.flush()
        return self._process


REAPER = Reaper()
