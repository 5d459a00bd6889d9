"""Real Kafka broker (or cluster) and real worker processes for tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka.admin import AIOKafkaAdminClient

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# Events are posted as a browser would send them: an HTTP library's own User-Agent (httpx's)
# would flag them as bots, which the read API leaves out.
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)


_port_picker = random.SystemRandom()  # not the global generator, which Hypothesis reseeds


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(span: int = 1) -> int:
    """A free port below the kernel's ephemeral range, with room for ``span - 1`` after it.

    A port the kernel hands out for bind(0) is also one it hands out as the source port of
    outgoing connections: while a broker or worker is stopped in a fault test, a client's
    connection could take its port, and the restart would fail with "Address already in use".
    """
    low, high = 20000, _ephemeral_floor() - span
    if high - low < 1000:  # an unusual ephemeral range: take what the kernel gives
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    for _ in range(200):
        port = _port_picker.randrange(low, high)
        if _bindable(port):
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def port_pair() -> int:
    """A port whose successor is free too (the KRaft controller listens on port+1)."""
    for _ in range(50):
        port = free_port(span=2)
        if _bindable(port + 1):
            return port
    raise RuntimeError("no free port pair for Kafka")


def port_block(size: int) -> int:
    """The first of ``size`` consecutive free ports (a cluster's client and controller ports)."""
    for _ in range(100):
        first = free_port(span=size)
        if all(_bindable(port) for port in range(first + 1, first + size)):
            return first
    raise RuntimeError(f"no {size} consecutive free ports")


@dataclass
class Broker:
    url: str  # kafka://host:port
    bootstrap: str
    env: dict[str, str]
    managed: bool

    def run(self, *command: str) -> None:
        subprocess.run([str(ROOT / "deploy/kafka.sh"), *command], env=self.env, check=True)

    def stop(self) -> None:
        self.run("stop")

    def start(self) -> None:
        self.run("start")


def start_broker(workdir: Path) -> Iterator[Broker]:
    existing = os.environ.get("TRACKFLOW_TEST_BROKER_URL")
    if existing:
        yield Broker(existing, existing.replace("kafka://", ""), dict(os.environ), managed=False)
        return
    port = port_pair()
    env = {
        **os.environ,
        "TRACKFLOW_KAFKA_PORT": str(port),
        "TRACKFLOW_KAFKA_DIR": str(workdir / "kafka"),
    }
    broker = Broker(f"kafka://127.0.0.1:{port}", f"127.0.0.1:{port}", env, managed=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass
class Cluster(Broker):
    """A local KRaft cluster started by ``deploy/kafka.sh cluster start N`` (nodes 1..N)."""

    nodes: int = 3

    def start(self) -> None:
        self.run("cluster", "start", str(self.nodes))

    def stop(self) -> None:
        self.run("cluster", "stop")

    def node(self, node: int, command: str) -> None:
        """``start``, ``stop`` (SIGTERM: a controlled shutdown) or ``kill`` (SIGKILL) one node."""
        self.run("node", str(node), command)

    def partitions(self, topics: Sequence[str]) -> list[PartitionState]:
        return asyncio.run(_describe(self.bootstrap, list(topics)))

    def leaders(self, topics: Sequence[str]) -> Counter[int]:
        """How many of the topics' partitions each node leads."""
        return Counter(p.leader for p in self.partitions(topics))

    def producer_ids(self, topic: str, node: int = 1) -> list[int]:
        """The producer id of every record batch of the topic's partitions on one node (-1: a
        producer without idempotence), read from the log segments with Kafka's dump tool."""
        data = Path(self.env["TRACKFLOW_KAFKA_DIR"]) / f"node-{node}" / "data"
        segments = sorted(str(f) for f in data.glob(f"{topic}-*/*.log"))
        assert segments, f"no log segments of {topic} in {data}"
        libs = (
            Path(self.env["KAFKA_HOME"]) / "libs"
            if self.env.get("KAFKA_HOME")
            else Path(self.env.get("TRACKFLOW_KAFKA_CACHE", ROOT / ".cache/kafka")) / "libs"
        )
        tool = ["java", "-cp", f"{libs}/*", "kafka.tools.DumpLogSegments"]
        dump = subprocess.run(
            [*tool, "--files", ",".join(segments)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [int(found) for found in re.findall(r"producerId: (-?\d+)", dump)]

    def wait_in_sync(self, topics: Sequence[str], timeout: float = 120.0) -> float:
        """Wait until every replica of the topics' partitions is in sync; seconds taken."""
        started = time.monotonic()
        behind: list[PartitionState] = []
        while time.monotonic() - started < timeout:
            try:
                states = self.partitions(topics)
            except Exception:  # a node on its way up or down; ask again
                states = []
            behind = [p for p in states if set(p.isr) != set(p.replicas) or p.leader < 0]
            if states and not behind:
                return time.monotonic() - started
            time.sleep(0.5)
        raise AssertionError(f"replicas not in sync after {timeout}s: {behind[:5]}")


async def _describe(bootstrap: str, topics: list[str]) -> list[PartitionState]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    states = []
    for topic in described:
        if topic["error_code"]:
            raise RuntimeError(f"describe {topic['topic']}: error {topic['error_code']}")
        for p in topic["partitions"]:
            states.append(
                PartitionState(
                    topic["topic"],
                    p["partition"],
                    p["leader"],
                    tuple(p["replicas"]),
                    tuple(p["isr"]),
                )
            )
    return states


def start_cluster(workdir: Path, nodes: int = 3) -> Iterator[Cluster]:
    """A local N-node cluster on free ports, stopped afterwards."""
    for attempt in (1, 2):
        # Another process may take one of the free ports before a node binds it; a second
        # attempt gets other ports.
        first = port_block(2 * nodes)
        env = {
            **os.environ,
            "TRACKFLOW_KAFKA_PORT": str(first),
            "TRACKFLOW_KAFKA_DIR": str(workdir / f"kafka-cluster-{attempt}"),
        }
        hosts = [f"127.0.0.1:{first + 2 * i}" for i in range(nodes)]
        cluster = Cluster(
            "kafka://" + ";".join(hosts), ",".join(hosts), env, managed=True, nodes=nodes
        )
        try:
            cluster.start()
            break
        except subprocess.CalledProcessError:
            cluster.stop()
            if attempt == 2:
                raise
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass
class Worker:
    """One `faust -A trackflow_app worker` process with its own topics, group and store."""

    broker: Broker
    workdir: Path
    api_key: str = "test-key"
    read_secret: str = "test-read-secret"
    overrides: dict[str, str] = field(default_factory=dict)
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"worker-{self.name}-{self.port}.log"

    @property
    def env(self) -> dict[str, str]:
        tag = self.overrides.get("_topics", self.name)
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")},
            "TRACKFLOW_BROKER_URL": self.broker.url,
            "TRACKFLOW_APP_ID": f"trackflow-{tag}",
            "TRACKFLOW_SINK_GROUP": f"trackflow-sink-{tag}",
            "TRACKFLOW_RAW_TOPIC": f"raw-{tag}",
            "TRACKFLOW_PROCESSED_TOPIC": f"processed-{tag}",
            "TRACKFLOW_DEAD_LETTER_TOPIC": f"dead-letter-{tag}",
            "TRACKFLOW_CLICKHOUSE_URL": f"chdb://{self.workdir / ('store-' + self.name)}",
            "TRACKFLOW_DATADIR": str(self.workdir / f"faust-{self.name}"),
            "TRACKFLOW_WEB_PORT": str(self.port),
            "TRACKFLOW_API_KEYS": f"{self.api_key},other-key",
            "TRACKFLOW_READ_KEYS": f"{self.api_key}:{self.read_secret}",
            "TRACKFLOW_SINK_WINDOW_S": "0.3",
        }
        base.update({k: v for k, v in self.overrides.items() if not k.startswith("_")})
        return base

    def start(self, timeout: float = 60.0, until_ready: bool = True) -> Worker:
        """Start the worker and wait until it has started and /readyz answers 200 (only until
        it has started with ``until_ready=False``: a worker whose store is not there yet)."""
        log = self.log_path.open("ab")
        log_offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "faust"), "-A", "trackflow_app", "worker", "-l", "info"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self.overrides.get("_preexec"),  # type: ignore[arg-type]
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early; log:\n{self.log_tail()}")
            fresh_log = self.log_path.read_bytes()[log_offset:]
            if b"[^Worker]: Ready" in fresh_log and (not until_ready or self.ready()):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready in {timeout}s; log:\n{self.log_tail()}")

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired as exc:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"worker ignored signal {sig}; log:\n{self.log_tail()}") from exc
        return int(self.proc.returncode)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    # -- HTTP ----------------------------------------------------------------------------
    def post(self, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return httpx.post(
            f"{self.base_url}/v1/batch",
            content=content,
            headers={
                "Content-Type": "application/json",
                "User-Agent": BROWSER_UA,
                **(headers or {}),
            },
            timeout=30,
        )

    def read(self, path: str, **params: str) -> httpx.Response:
        """GET a read API path with this worker's read secret."""
        return httpx.get(
            f"{self.base_url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.read_secret}"},
            timeout=30,
        )

    def session_events(self, session_id: str) -> list[dict[str, Any]]:
        response = self.read("/v1/query/events", session_id=session_id)
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()["events"]
        return events

    def wait_for_session(
        self, session_id: str, count: int, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        events: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            events = self.session_events(session_id)
            if len(events) >= count:
                return events
            time.sleep(0.2)
        raise AssertionError(f"expected {count} events of {session_id}, found {len(events)}")

    def metric(self, name: str) -> float:
        [total] = self.metrics(name)
        return total

    def metrics(self, *names: str) -> list[float]:
        """Each name's samples summed (a name may carry labels), from one read of /metrics."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=10).text
        totals = [0.0] * len(names)
        for line in text.splitlines():
            for i, name in enumerate(names):
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    totals[i] += float(line.rsplit(" ", 1)[1])
        return totals

    # -- the command line, with this worker's settings ---------------------------------------
    def cli(self, *args: str) -> list[dict[str, Any]]:
        """``python -m trackflow_app ARGS`` with this worker's environment; its JSON lines."""
        out = subprocess.run(
            [sys.executable, "-m", "trackflow_app", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        ).stdout
        return [orjson.loads(line) for line in out.splitlines() if line.strip()]

    def query_store(self, sql: str) -> list[dict[str, Any]]:
        """Query the chDB store (once the worker has stopped: chDB allows one process)."""
        return self.cli("query", sql)
