"""A real local Apache Kafka broker (KRaft, single node) and redis-server, run as child processes.

Layout under the data dir:
    kafka-libs/   the broker's jars, fetched once with Maven
    kafka/        server.properties, log4j2.properties, data/ (the log dir) and kafka.log
    redis/        the append-only file and redis.log
    infra.json    endpoints and pids of the running pair, for other `switchboard` commands
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import redis
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from switchboard.processes import die_with_parent_hook

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
DEFAULT_KAFKA_PORT = 9092
DEFAULT_KAFKA_CONTROLLER_PORT = 9093
DEFAULT_REDIS_PORT = 6379
MIN_JAVA_MAJOR = 17
KAFKA_HEAP = "-Xmx1g"
KAFKA_POM = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "pom.xml"
STATE_FILE_NAME = "infra.json"

_KAFKA_META_FILE = "meta.properties"  # written by formatting the storage
_POLL_INTERVAL = 0.1
_KILL_GRACE = 5.0
_LOG_TAIL_LINES = 20
_LOG_TAIL_BYTES = 64 * 1024
_JAVA_STACK_FRAME = re.compile(r"\s+(at |\.\.\. \d+ more)")

# What /proc/<pid>/cmdline must contain for a recorded pid to still be our process: pids get reused.
_RECORDED_PROGRAMS = {"kafka_pid": b"kafka.Kafka", "redis_pid": b"redis-server"}

_LOG4J2_PROPERTIES = """\
status = warn
shutdownHook = disable
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.console.ref = STDOUT
"""


class MissingTool(RuntimeError):
    """A program the local infrastructure needs is not installed; the message says what to install."""


@dataclass(frozen=True)
class InfraEndpoints:
    kafka_bootstrap: str  # "127.0.0.1:9092"
    redis_url: str  # "redis://127.0.0.1:6379/0"


class _Stoppable(NamedTuple):
    name: str
    pid: int
    has_exited: Callable[[], bool]


@dataclass(frozen=True)
class _Service:
    """One child process we started, with the log that explains its failures."""

    name: str
    process: subprocess.Popen
    log_file: Path

    def stoppable(self) -> _Stoppable:
        return _Stoppable(self.name, self.process.pid, lambda: self.process.poll() is not None)

    def raise_unless_starting(self, deadline: float) -> None:
        """Give up on a child that died or overran its start-up deadline, quoting its log."""
        if (exit_code := self.process.poll()) is not None:
            problem = f"{self.name} exited with code {exit_code} while starting"
        elif time.monotonic() > deadline:
            problem = f"{self.name} did not become ready in time"
        else:
            return
        raise RuntimeError(f"{problem}; last lines of {self.log_file}:\n{last_lines(self.log_file)}")


class LocalInfra:
    """Kafka and Redis started by start_infra in this process; the owner calls stop()."""

    def __init__(self, endpoints: InfraEndpoints, data_dir: Path, kafka: _Service, redis_service: _Service) -> None:
        self.endpoints = endpoints
        self._data_dir = data_dir
        self._kafka = kafka
        self._redis = redis_service

    @property
    def pids(self) -> dict[str, int]:
        return {"kafka": self._kafka.process.pid, "redis": self._redis.process.pid}

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM both, SIGKILL whatever still runs after `timeout` seconds; safe to call again."""
        _terminate([self._kafka.stoppable(), self._redis.stoppable()], timeout)
        state = _read_state(self._data_dir)
        # A later start_infra on the same data dir may have recorded its own processes: leave its file alone.
        if state is not None and (state.get("kafka_pid"), state.get("redis_pid")) == (
            self._kafka.process.pid,
            self._redis.process.pid,
        ):
            _state_file(self._data_dir).unlink(missing_ok=True)


def kafka_jars(data_dir: Path) -> Path:
    """The directory holding the Kafka broker's classpath, downloaded with Maven the first time."""
    jars_dir = Path(data_dir) / "kafka-libs"
    if any(jars_dir.glob("kafka_2.13-*.jar")):
        return jars_dir
    mvn = _require_program("mvn", "Maven (mvn) is required to download the Kafka broker jars once", "maven")
    # Download beside the final directory and rename it into place, so an interrupted download never looks cached.
    staging_dir = Path(data_dir) / "kafka-libs.partial"
    shutil.rmtree(staging_dir, ignore_errors=True)
    logger.info("Downloading the Kafka broker jars with Maven into %s", jars_dir)
    result = subprocess.run(
        [mvn, "-B", "-q", "-f", str(KAFKA_POM), "dependency:copy-dependencies", f"-DoutputDirectory={staging_dir}"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        output_tail = "\n".join((result.stdout + result.stderr).splitlines()[-_LOG_TAIL_LINES:])
        raise RuntimeError(f"mvn failed (exit code {result.returncode}) to fetch the Kafka broker jars:\n{output_tail}")
    shutil.rmtree(jars_dir, ignore_errors=True)
    staging_dir.rename(jars_dir)
    return jars_dir


def start_infra(
    data_dir: Path, *, detached: bool, prefer_default_ports: bool = True, ready_timeout: float = 90
) -> LocalInfra:
    """Start Kafka and Redis under data_dir and return once both serve clients.

    detached=False ties the children to this process: they get SIGTERM when it dies. The kernel
    delivers that signal when the *thread* that spawned them exits, so call this from a thread that
    lives as long as the program (normally the main thread). detached=True lets them outlive us.
    Either way they run in their own session, so a terminal's Ctrl-C reaches only us.
    """
    data_dir = Path(data_dir).resolve()
    java = _require_java()
    redis_server = _require_program("redis-server", "redis-server is required to run the local Redis", "redis-server")
    if (running := recorded_infra(data_dir)) is not None:
        raise RuntimeError(
            f"Local infra for {data_dir} is already running (Kafka {running['kafka_bootstrap']}, "
            f"Redis {running['redis_url']}); stop it first."
        )
    # A previous run of which only one process survived still holds its port or the Kafka log dir lock.
    if stop_recorded_infra(data_dir):
        logger.warning("Stopped the leftovers of a previous local infra in %s", data_dir)
    jars_dir = kafka_jars(data_dir)

    kafka_port, controller_port, redis_port = _choose_ports(
        [DEFAULT_KAFKA_PORT, DEFAULT_KAFKA_CONTROLLER_PORT, DEFAULT_REDIS_PORT], prefer_default_ports
    )
    endpoints = InfraEndpoints(
        kafka_bootstrap=f"{LOOPBACK}:{kafka_port}", redis_url=f"redis://{LOOPBACK}:{redis_port}/0"
    )
    started_at = time.monotonic()
    started: list[_Service] = []
    try:
        # Redis comes up in milliseconds, Kafka needs a JVM for formatting and another for the broker:
        # spawn Redis first so it boots while Kafka is being prepared.
        redis_service = _spawn_redis(redis_server, data_dir / "redis", redis_port, detached=detached)
        started.append(redis_service)
        kafka_service = _spawn_kafka(java, jars_dir, data_dir / "kafka", kafka_port, controller_port, detached=detached)
        started.append(kafka_service)
        # Recorded before waiting, so that `switchboard infra down` can clean up should we die meanwhile.
        _write_state(
            data_dir,
            {
                "kafka_bootstrap": endpoints.kafka_bootstrap,
                "redis_url": endpoints.redis_url,
                "kafka_pid": kafka_service.process.pid,
                "redis_pid": redis_service.process.pid,
                "detached": detached,
                "owner_pid": os.getpid(),
            },
        )
        deadline = time.monotonic() + ready_timeout
        _wait_for_redis(redis_service, endpoints.redis_url, deadline)
        _wait_for_kafka(kafka_service, kafka_port, _kafka_cluster_id(data_dir / "kafka"), deadline)
    except BaseException:
        _terminate([service.stoppable() for service in started], timeout=10)
        _state_file(data_dir).unlink(missing_ok=True)
        raise
    logger.info(
        "Local Kafka at %s and Redis at %s ready after %.1fs",
        endpoints.kafka_bootstrap,
        endpoints.redis_url,
        time.monotonic() - started_at,
    )
    return LocalInfra(endpoints, data_dir, kafka_service, redis_service)


def recorded_infra(data_dir: Path) -> dict | None:
    """The contents of infra.json if both recorded processes still run, else None.

    A file whose processes are all gone is removed. One with a single survivor is kept so that
    stop_recorded_infra can still stop that survivor.
    """
    state = _read_state(Path(data_dir))
    if state is None:
        return None
    running = _running_recorded_pids(state)
    if len(running) == len(_RECORDED_PROGRAMS):
        return state
    if not running:
        _state_file(Path(data_dir)).unlink(missing_ok=True)
    return None


def stop_recorded_infra(data_dir: Path, timeout: float = 30) -> bool:
    """Stop the processes recorded in infra.json, remove the file and say whether any was running."""
    state = _read_state(Path(data_dir))
    if state is None:
        return False
    running = _running_recorded_pids(state)
    _terminate([_recorded_process(key, pid) for key, pid in running.items()], timeout)
    _state_file(Path(data_dir)).unlink(missing_ok=True)
    return bool(running)


def _require_program(name: str, requirement: str, debian_package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingTool(f"{requirement}: install it (Debian: apt-get install {debian_package})")
    return path


def _require_java() -> str:
    requirement = f"Java {MIN_JAVA_MAJOR}+ is required to run the local Kafka broker"
    debian_package = f"openjdk-{MIN_JAVA_MAJOR}-jre-headless"
    java = _require_program("java", requirement, debian_package)
    major = _java_major_version(java)
    if major is not None and major < MIN_JAVA_MAJOR:
        raise MissingTool(
            f"{requirement} but {java} is Java {major}: install a newer one (Debian: apt-get install {debian_package})"
        )
    return java


def _java_major_version(java: str) -> int | None:
    """The major version `java -version` reports, or None when its output is not understood."""
    output = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if match is None:
        return None
    # Java 8 and older report themselves as "1.8.0_…".
    return int(match[2] or 0) if match[1] == "1" else int(match[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Like the servers themselves, ignore connections lingering in TIME_WAIT: only a listener blocks us.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _choose_ports(defaults: list[int], prefer_defaults: bool) -> list[int]:
    """Each default port when wanted and free, otherwise a distinct free loopback port."""
    with ExitStack() as held:
        ports = []
        for default in defaults:
            if prefer_defaults and _port_is_free(default):
                ports.append(default)
                continue
            # Kept bound until all are picked, so the kernel cannot hand out the same port twice.
            placeholder = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            placeholder.bind((LOOPBACK, 0))
            ports.append(placeholder.getsockname()[1])
        return ports


def _spawn(name: str, command: list[str], work_dir: Path, log_file: Path, *, detached: bool) -> _Service:
    logger.debug("Starting %s: %s", name, command)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command,
            cwd=work_dir,  # where a crashing JVM drops its hs_err file
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=None if detached else die_with_parent_hook(),
        )
    return _Service(name, process, log_file)


def _spawn_redis(redis_server: str, redis_dir: Path, port: int, *, detached: bool) -> _Service:
    redis_dir.mkdir(parents=True, exist_ok=True)
    log_file = redis_dir / "redis.log"
    command = [
        redis_server,
        "--port", str(port),
        "--bind", LOOPBACK,
        "--dir", str(redis_dir),
        "--save", "",
        # State survives a restart, losing at most a second of writes (SPEC §4).
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--daemonize", "no",
        "--logfile", str(log_file),
    ]  # fmt: skip
    return _spawn("Redis", command, redis_dir, log_file, detached=detached)


def _spawn_kafka(
    java: str, jars_dir: Path, kafka_dir: Path, port: int, controller_port: int, *, detached: bool
) -> _Service:
    log_dir = _kafka_log_dir(kafka_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    # Rewritten on every start since the ports may differ. A single-node KRaft quorum formatted with
    # --standalone keeps working when its controller port changes (verified with Kafka 4.1).
    server_properties = kafka_dir / "server.properties"
    server_properties.write_text(_server_properties(port, controller_port, log_dir))
    log4j_properties = kafka_dir / "log4j2.properties"
    log4j_properties.write_text(_LOG4J2_PROPERTIES)
    java_options = [f"-Dlog4j2.configurationFile={log4j_properties}", "-cp", str(jars_dir / "*")]
    # Formatting is what writes meta.properties; doing it again would wipe the topics.
    if not (log_dir / _KAFKA_META_FILE).exists():
        _format_kafka_storage(java, java_options, server_properties)
    command = [java, KAFKA_HEAP, *java_options, "kafka.Kafka", str(server_properties)]
    return _spawn("Kafka", command, kafka_dir, kafka_dir / "kafka.log", detached=detached)


def _kafka_log_dir(kafka_dir: Path) -> Path:
    return kafka_dir / "data"


def _kafka_cluster_id(kafka_dir: Path) -> str:
    meta = (_kafka_log_dir(kafka_dir) / _KAFKA_META_FILE).read_text()
    return re.search(r"^cluster\.id=(.+)$", meta, re.MULTILINE)[1].strip()


def _server_properties(port: int, controller_port: int, log_dir: Path) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{LOOPBACK}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "4",
        "auto.create.topics.enable": "true",
        # A single broker can hold only one replica of the internal topics.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # Nobody else is going to join: start a consumer group's first rebalance at once.
        "group.initial.rebalance.delay.ms": "0",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _format_kafka_storage(java: str, java_options: list[str], server_properties: Path) -> None:
    # Written as --cluster-id=…: an ID may begin with "-", which would read as an option otherwise.
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    logger.info("Formatting the Kafka storage of %s (cluster id %s)", server_properties.parent, cluster_id)
    result = subprocess.run(
        [java, *java_options, "kafka.tools.StorageTool", "format",
         f"--cluster-id={cluster_id}", "-c", str(server_properties), "--standalone"],
        cwd=server_properties.parent,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )  # fmt: skip
    if result.returncode != 0:
        output_tail = "\n".join((result.stdout + result.stderr).splitlines()[-_LOG_TAIL_LINES:])
        raise RuntimeError(f"Formatting the Kafka storage failed (exit code {result.returncode}):\n{output_tail}")


def _wait_for_redis(service: _Service, redis_url: str, deadline: float) -> None:
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        while True:
            try:
                # Should someone else's Redis hold the port, ours exits and raise_unless_starting says why.
                if client.ping() and client.info("server")["process_id"] == service.process.pid:
                    return
            except (redis.ConnectionError, redis.TimeoutError):  # also "still loading the append-only file"
                pass
            service.raise_unless_starting(deadline)
            time.sleep(_POLL_INTERVAL)
    finally:
        client.close()


def _wait_for_kafka(service: _Service, port: int, cluster_id: str, deadline: float) -> None:
    # The cheap TCP check comes first because aiokafka logs an error for every refused connection.
    while not (_accepts_connections(port) and _kafka_serves_metadata(f"{LOOPBACK}:{port}", cluster_id)):
        service.raise_unless_starting(deadline)
        time.sleep(_POLL_INTERVAL)


def _accepts_connections(port: int) -> bool:
    try:
        socket.create_connection((LOOPBACK, port), timeout=1).close()
    except OSError:
        return False
    return True


def _kafka_serves_metadata(bootstrap: str, cluster_id: str) -> bool:
    """Whether a real client gets metadata listing a broker of our cluster, i.e. our broker joined its controller.

    The cluster id tells our broker from someone else's that holds the port, in which case ours
    exits and raise_unless_starting says why.
    """

    async def fetch_brokers() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            return cluster["cluster_id"] == cluster_id and bool(cluster["brokers"])
        except KafkaError:
            return False
        finally:
            await admin.close()

    # asyncio.run refuses to run in a thread whose event loop is already running, as an async
    # caller's would be; a helper thread never has one.
    with ThreadPoolExecutor(max_workers=1) as helper:
        return helper.submit(asyncio.run, fetch_brokers()).result()


def _terminate(processes: list[_Stoppable], timeout: float) -> None:
    """SIGTERM every process, wait up to `timeout` seconds for all to exit, then SIGKILL the rest."""
    for process in processes:
        if not process.has_exited():
            _send_signal(process.pid, signal.SIGTERM)
    if _wait_until(lambda: all(process.has_exited() for process in processes), timeout):
        return
    for process in processes:
        if not process.has_exited():
            logger.warning("%s (pid %d) ignored SIGTERM for %.0fs; killing it", process.name, process.pid, timeout)
            _send_signal(process.pid, signal.SIGKILL)
    if not _wait_until(lambda: all(process.has_exited() for process in processes), _KILL_GRACE):
        survivors = [process.pid for process in processes if not process.has_exited()]
        logger.error("Processes %s survived SIGKILL", survivors)


def _send_signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # exited meanwhile, which is what we want


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_INTERVAL)
    return True


def _is_running(pid: int, program: bytes) -> bool:
    """Whether pid is alive and still runs `program` (an exited child awaiting its parent has no cmdline)."""
    try:
        os.kill(pid, 0)
        return program in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (ProcessLookupError, PermissionError, FileNotFoundError):
        return False


def _recorded_process(key: str, pid: int) -> _Stoppable:
    """A process recorded in infra.json: not our child, so its exit is seen through /proc."""
    program = _RECORDED_PROGRAMS[key]
    return _Stoppable(key, pid, lambda: not _is_running(pid, program))


def _running_recorded_pids(state: dict) -> dict[str, int]:
    return {
        key: state[key]
        for key, program in _RECORDED_PROGRAMS.items()
        if isinstance(state.get(key), int) and _is_running(state[key], program)
    }


def _state_file(data_dir: Path) -> Path:
    return data_dir / STATE_FILE_NAME


def _read_state(data_dir: Path) -> dict | None:
    try:
        state = json.loads(_state_file(data_dir).read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        logger.warning("Ignoring the unreadable %s", _state_file(data_dir))
        return None
    return state if isinstance(state, dict) else None


def _write_state(data_dir: Path, state: dict) -> None:
    # Written aside and renamed, so that readers never see half a file.
    partial = data_dir / f".{STATE_FILE_NAME}.partial"
    partial.write_text(json.dumps(state, indent=2) + "\n")
    partial.replace(_state_file(data_dir))


def last_lines(log_file: Path) -> str:
    """The last lines of a log that explain a failure (Java stack frames left out), or "(no log written)"."""
    # Logs are appended to across restarts: read only their end.
    try:
        with log_file.open("rb") as log:
            log.seek(max(0, log_file.stat().st_size - _LOG_TAIL_BYTES))
            lines = log.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    # Java stack frames would crowd out the messages that explain a failure.
    messages = [line for line in lines if not _JAVA_STACK_FRAME.match(line)]
    return "\n".join(messages[-_LOG_TAIL_LINES:])
