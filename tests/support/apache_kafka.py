"""Apache Kafka for the conformance run: one KRaft node (broker and controller in one JVM) from the
Apache Kafka jars, with no Kafka distribution installed.

    python -m tests.support.apache_kafka -- COMMAND...

downloads the jars once (Maven, `tests/apache-kafka/pom.xml`, kept in a cache directory), formats a
fresh log directory, starts the broker on free local ports, runs COMMAND with
`OMNIROUTE_TEST_KAFKA=<bootstrap servers>` and `OMNIROUTE_KAFKA_ENABLE_IDEMPOTENCE=true`, stops the
broker and exits with COMMAND's exit code. `make test-kafka` runs the whole suite this way. With no
COMMAND it starts the broker and keeps it up until Ctrl-C.

The command also gets `OMNIROUTE_TEST_APACHE_KAFKA_LIBS` (the jars): a test that needs a broker of
its own (tests/conftest.py `start_kafka`) then gets an Apache Kafka too, not the local broker.

Environment:
  OMNIROUTE_APACHE_KAFKA_VERSION  the Kafka release (default below)
  OMNIROUTE_APACHE_KAFKA_CACHE    where the jars are kept (default ~/.cache/omniroute); one
                                  `apache-kafka-<version>/libs` folder per version
  MAVEN_OPTS                      e.g. `-Dmaven.repo.local=DIR`: where Maven itself keeps what it
                                  downloads (default ~/.m2/repository)
  JAVA_HOME                       the Java (17 or newer) to run; else `java` on the PATH
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

from services.launcher.embedded import free_port, port_is_open
from services.launcher.reaper import REAPER
from tests.support import tools

# The newest release with all its modules published (4.4.0 lacked kafka-tools-api when this was
# written); keep tests/apache-kafka/pom.xml's default and log4j version in step.
DEFAULT_VERSION = "4.3.1"
POM = Path(__file__).resolve().parents[1] / "apache-kafka" / "pom.xml"
HEAP = "512m"
LIBS_ENV = "OMNIROUTE_TEST_APACHE_KAFKA_LIBS"


def say(message: str) -> None:
    print(f"apache-kafka: {message}", file=sys.stderr, flush=True)


def kafka_version() -> str:
    return os.environ.get("OMNIROUTE_APACHE_KAFKA_VERSION") or DEFAULT_VERSION


def cache_root() -> Path:
    configured = os.environ.get("OMNIROUTE_APACHE_KAFKA_CACHE")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "omniroute"


def ensure_jars(
    version: str | None = None, cache: Path | None = None, *, log: Callable[[str], None] = say
) -> Path:
    """The folder holding every jar the broker needs, downloaded by Maven on first use only."""
    version = version or kafka_version()
    libs = (cache or cache_root()) / f"apache-kafka-{version}" / "libs"
    complete = libs / ".complete"
    if complete.exists():
        return libs
    # Maven is needed once, to download the jars; a root CI machine without it installs it.
    mvn = str(tools.system_program("mvn", "maven", log=log))
    # Download next to the final folder and rename it into place, so an interrupted download is
    # never taken for a complete one.
    staging = libs.with_name(f"libs.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    log(f"downloading the Apache Kafka {version} jars into {libs} (first run only)…")
    started = time.monotonic()
    result = subprocess.run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(POM),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not (staging / f"kafka_2.13-{version}.jar").exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(
            f"Maven could not fetch Apache Kafka {version} (exit {result.returncode}):\n"
            + tail(result.stdout + result.stderr)
        )
    (staging / ".complete").touch()
    if libs.exists() and not complete.exists():
        shutil.rmtree(libs)
    try:
        staging.rename(libs)
    except OSError:
        # Another run finished the same download first; use its copy.
        shutil.rmtree(staging, ignore_errors=True)
        if not complete.exists():
            raise
    jars = len(list(libs.glob("*.jar")))
    log(f"downloaded {jars} jars in {time.monotonic() - started:.1f} s")
    return libs


def java_executable() -> str:
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not java.exists():
            raise RuntimeError(f"JAVA_HOME is {home}, but it has no bin/java")
        return str(java)
    # Java 17 or newer; Debian's default JRE is.
    return str(tools.system_program("java", "default-jre-headless"))


def random_cluster_id() -> str:
    """A Kafka `Uuid` as the storage tool prints it: 16 random bytes, URL-safe base64, no padding,
    never starting with '-' (it would read as an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = out
logger.state_change.name = state.change.logger
logger.state_change.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


class BrokerExited(RuntimeError):
    def __init__(self, code: int, log: str) -> None:
        super().__init__(f"Apache Kafka exited with code {code}:\n{log}")
        self.log = log


class ApacheKafka:
    """One KRaft node (process.roles=broker,controller) in `work_dir`, on free local ports."""

    def __init__(
        self,
        libs: Path,
        work_dir: Path,
        *,
        host: str = "127.0.0.1",
        heap: str = HEAP,
        log: Callable[[str], None] = say,
    ) -> None:
        self.libs = libs
        self.work_dir = work_dir
        self.host = host
        self.heap = heap
        self.port = self.controller_port = 0
        self._choose_ports()
        self.log_path = work_dir / "server.log"
        self._say = log
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def _choose_ports(self) -> None:
        self.port = free_port(self.host)
        self.controller_port = free_port(self.host)
        while self.controller_port == self.port:
            self.controller_port = free_port(self.host)

    def server_properties(self) -> str:
        broker = f"PLAINTEXT://{self.host}:{self.port}"
        controller = f"CONTROLLER://{self.host}:{self.controller_port}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"{broker},{controller}",
            "advertised.listeners": broker,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.work_dir / "data"),
            # The services create every topic explicitly (services/contracts/topics.py), as in
            # production; a topic that only exists by accident must fail here too.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            # One node: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Tests start consumer groups all the time and use 6 s session timeouts
            # (tests/conftest.py): no join delay, and allow short sessions.
            "group.initial.rebalance.delay.ms": "0",
            "group.min.session.timeout.ms": "1000",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java(self, main: str, *args: str, heap: str) -> list[str]:
        return [
            java_executable(),
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.work_dir / 'log4j2.properties'}",
            "-cp",
            str(self.libs / "*"),  # the JVM expands the wildcard
            main,
            *args,
        ]

    def _write_log4j(self, level: str) -> None:
        (self.work_dir / "log4j2.properties").write_text(LOG4J2.format(level=level))

    def format_storage(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "server.properties"
        config.write_text(self.server_properties())
        self._write_log4j("WARN")
        self._say("formatting the KRaft log directory…")
        result = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                random_cluster_id(),
                "--config",
                str(config),
                heap="256m",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"formatting the Kafka storage failed (exit {result.returncode}):\n"
                + tail(result.stdout + result.stderr)
            )

    def start(self, timeout: float = 90.0, attempts: int = 3) -> None:
        started = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(started + timeout)
                break
            except BrokerExited as exited:
                # A free port can be taken by someone else before the JVM binds it: try others.
                if "Address already in use" not in exited.log or attempt == attempts:
                    raise
                self._say("a port was taken meanwhile; trying others")
                self._choose_ports()
        self._say(
            f"broker ready at {self.bootstrap_servers} in {time.monotonic() - started:.1f} s "
            f"(log: {self.log_path})"
        )

    def _start_once(self, deadline: float) -> None:
        shutil.rmtree(self.work_dir / "data", ignore_errors=True)
        self.format_storage()
        self._write_log4j("INFO")
        self._say(f"starting Apache Kafka on {self.bootstrap_servers}…")
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop())
        self._process = subprocess.Popen(
            self._java("kafka.Kafka", str(self.work_dir / "server.properties"), heap=self.heap),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the command; this helper stops the broker
        )
        # Stopped by stop(); by the reaper should this process die first.
        REAPER.watch(self._process.pid, grace=30.0)
        try:
            self._wait_until_ready(deadline)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, deadline: float) -> None:
        """Ready means the node answers as a registered, unfenced broker: until then creating a
        topic fails for want of a broker to place it on."""
        assert self._process is not None
        last_error = "the broker does not listen yet"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerExited(self._process.returncode, self.log_tail())
            if port_is_open(self.host, self.port):
                try:
                    if self._registered_brokers_now() > 0:
                        return
                    last_error = "no broker registered yet"
                except Exception as error:  # any client error: not ready yet
                    last_error = f"{type(error).__name__}: {error}"
            time.sleep(0.2)
        raise RuntimeError(
            f"Apache Kafka was not ready at {self.bootstrap_servers} in time ({last_error}):\n"
            + self.log_tail()
        )

    def _registered_brokers_now(self) -> int:
        # In a thread of its own: tests call this from inside their running event loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self._registered_brokers()).result()

    async def _registered_brokers(self) -> int:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, request_timeout_ms=5000
        )
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            await admin.list_topics()
            return len(cluster["brokers"])
        finally:
            await admin.close()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: the broker shuts down cleanly (a few seconds); SIGKILL if it does not."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._say(f"the broker did not stop in {timeout:.0f} s; killing it")
                process.kill()
                process.wait(10)
        if process is not None:
            REAPER.forget(process.pid)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no broker log)"
        return tail(self.log_path.read_text(errors="replace"), lines)

    def __enter__(self) -> ApacheKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a CI timeout, `kill`): unwinds like Ctrl-C, so the broker is still stopped."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def run_command(command: Sequence[str], env: dict[str, str]) -> int:
    """Run `command`; on Ctrl-C or SIGTERM give it time to tear down (pytest stops the brokers
    it started itself) before the broker goes away. Its exit code, shell style."""
    try:
        process = subprocess.Popen(command, env=env)
    except FileNotFoundError:
        say(f"no such command: {command[0]}")
        return 127
    # Should this helper be killed outright, the command gets SIGTERM (pytest then stops what it
    # started) and the broker is stopped by the reaper.
    REAPER.watch(process.pid, grace=90.0, group=False)
    try:
        code = process.wait()
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt, _Terminated):
            process.send_signal(signal.SIGINT)  # Ctrl-C reached it already; SIGTERM did not
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    REAPER.forget(process.pid)
    return 128 - code if code < 0 else code


def run(command: Sequence[str]) -> int:
    """Start a broker, run `command` against it (or wait for Ctrl-C), stop it; the exit code."""
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGHUP, _raise_terminated)
    libs = ensure_jars()
    work_dir = Path(tempfile.mkdtemp(prefix="omniroute-apache-kafka-"))
    kafka = ApacheKafka(libs, work_dir)
    code = 1
    try:
        kafka.start()
        if not command:
            say("Ctrl-C stops it")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
            code = 0
            return code
        env = {
            **os.environ,
            "OMNIROUTE_TEST_KAFKA": kafka.bootstrap_servers,
            LIBS_ENV: str(libs),
            # Apache Kafka has the idempotent producer the local broker lacks: use it.
            "OMNIROUTE_KAFKA_ENABLE_IDEMPOTENCE": os.environ.get(
                "OMNIROUTE_KAFKA_ENABLE_IDEMPOTENCE", "true"
            ),
        }
        code = run_command(command, env)
        return code
    except KeyboardInterrupt:
        code = 130
        return code
    finally:
        kafka.stop()
        if code == 0:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            say(f"broker log kept: {kafka.log_path}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if args and args[0] == "--":
        args = args[1:]
    try:
        return run(args)
    except RuntimeError as error:
        say(str(error))
        return 1


if __name__ == "__main__":
    sys.exit(main())
