"""Apache Kafka 4 in KRaft mode from Maven Central jars: one broker, or three.

Every node is broker and controller at once (``process.roles=broker,controller``), with a
static quorum (``controller.quorum.voters``) of all nodes, listening on 127.0.0.1: a client
port (``PLAINTEXT``) and a controller port each, data in ``DIR/kafka/node-<id>/data``. The
internal topics (consumer offsets, transaction state, share-group state) get a replication
factor equal to the number of brokers, so that a three-broker cluster is really replicated
(min ISR 2). Each node's directory is formatted once with ``kafka.tools.StorageTool`` for a
cluster id kept in ``DIR/kafka/cluster-id``. Ready when a Metadata request lists every broker.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import ClassVar

from services import java, kafka_probe
from services.errors import ServiceError, ServiceUsageError
from services.java import JAVA_DIR, Bundle
from services.maven import pom_property
from services.server import Home, Options, Server
from services.tls import make_tls_files, pkcs12_keystore

__all__ = ["Kafka"]

POM = JAVA_DIR / "kafka" / "pom.xml"
VERSION = pom_property(POM, "kafka.version")
START_TIMEOUT = 120.0
FORMAT_TIMEOUT = 120.0
BROKER_COUNTS = (1, 3)
#: Heap per broker; ``CHANGEHUB_KAFKA_HEAP`` overrides it.
HEAP = "512m"
#: Of the throw-away keystore of --tls (services/tls.py), readable only by its owner.
KEYSTORE_PASSWORD = "changehub-test"


def _cluster_id() -> str:
    """A random Kafka cluster id: 16 bytes, URL-safe base64 without padding, as Kafka's Uuid.
    Like Kafka we avoid a leading '-', which its command line would take for an option."""
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _properties(
    node: int, brokers: int, ports: dict[str, int], data: Path, keystore: Path | None = None
) -> str:
    replicas = brokers
    min_isr = min(2, brokers)
    voters = ",".join(f"{i}@127.0.0.1:{ports[f'controller-{i}']}" for i in range(1, brokers + 1))
    settings = {
        "process.roles": "broker,controller",
        "node.id": node,
        "controller.quorum.voters": voters,
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{ports[f'broker-{node}']},"
            f"CONTROLLER://127.0.0.1:{ports[f'controller-{node}']}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{ports[f'broker-{node}']}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": data,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        # Fewer partitions for the internal topics than the default 50: they are created on
        # first use, and a test should not wait for 150 replicas to come up.
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.num.partitions": 10,
        # Tests join consumer groups often; the default 3 s delay would add up.
        "group.initial.rebalance.delay.ms": 0,
    }
    if keystore is not None:
        # --tls: an SSL listener beside PLAINTEXT (which the brokers and the probe keep using).
        ssl = f"SSL://127.0.0.1:{ports[f'ssl-{node}']}"
        settings["listeners"] = f"{settings['listeners']},{ssl}"
        settings["advertised.listeners"] = f"{settings['advertised.listeners']},{ssl}"
        protocols = settings["listener.security.protocol.map"]
        settings["listener.security.protocol.map"] = f"{protocols},SSL:SSL"
        settings["ssl.keystore.type"] = "PKCS12"
        settings["ssl.keystore.location"] = keystore
        settings["ssl.keystore.password"] = KEYSTORE_PASSWORD
    lines = ["# Written by services/kafka.py; rewritten at every start."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


class Kafka(Server):
    name = "kafka"
    main_port = "broker-1"
    serves_tls = True
    apt_packages: ClassVar[tuple[str, ...]] = java.APT_PACKAGES
    stop_timeout: ClassVar[float] = 60.0
    bundle: ClassVar[Bundle] = Bundle(name=f"kafka-{VERSION}", pom=POM)

    def check_options(self, options: Options) -> None:
        if options.brokers not in BROKER_COUNTS:
            raise ServiceUsageError(f"--brokers must be 1 or 3, not {options.brokers}")
        super().check_options(Options(port=options.port, tls=options.tls))

    def missing(self) -> list[str]:
        return self.bundle.missing()

    def install(self) -> None:
        self.bundle.install()

    def start(self, home: Home, options: Options) -> dict[str, str]:
        brokers = options.brokers
        cluster_id = self._cluster(home.path, brokers)
        nodes = range(1, brokers + 1)
        for node in nodes:
            home.port(f"broker-{node}")
        for node in nodes:
            home.port(f"controller-{node}")
        keystore = None
        tls_facts: dict[str, str] = {}
        if options.tls:
            tls = make_tls_files(home.path / "tls")
            keystore = pkcs12_keystore(tls, KEYSTORE_PASSWORD)
            for node in nodes:
                home.port(f"ssl-{node}")
            tls_facts = {
                **tls.facts(),
                "KAFKA_SSL_BOOTSTRAP": ",".join(
                    f"127.0.0.1:{home.state.ports[f'ssl-{node}']}" for node in nodes
                ),
            }
        configs = []
        for node in nodes:
            node_dir = home.path / f"node-{node}"
            (node_dir / "logs").mkdir(parents=True, exist_ok=True)
            config = node_dir / "server.properties"
            config.write_text(
                _properties(node, brokers, home.state.ports, node_dir / "data", keystore)
            )
            configs.append(config)
        self._format(home, cluster_id, [c for c in configs if not _formatted(c.parent)])
        java_bin = str(java.jdk() / "bin" / "java")
        heap = os.environ.get("CHANGEHUB_KAFKA_HEAP", HEAP)
        for node, config in zip(nodes, configs, strict=True):
            home.spawn(
                [
                    java_bin, "-Xms256m", f"-Xmx{heap}", "-XX:+UseG1GC",
                    "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError",
                    "-Djava.awt.headless=true", f"-Dkafka.logs.dir={config.parent / 'logs'}",
                    f"-Dlog4j2.configurationFile={JAVA_DIR / 'log4j2.properties'}",
                    "-cp", self.bundle.classpath(), "kafka.Kafka", str(config),
                ],
                log_name=f"node-{node}",
            )  # fmt: skip
        first = home.state.ports["broker-1"]
        home.wait_until_ready(
            f"kafka ({brokers} broker{'s' if brokers > 1 else ''})",
            lambda: kafka_probe.alive_brokers("127.0.0.1", first) == brokers,
            timeout=START_TIMEOUT,
        )
        return {
            "KAFKA_BOOTSTRAP": ",".join(
                f"127.0.0.1:{home.state.ports[f'broker-{node}']}" for node in nodes
            ),
            "KAFKA_BROKERS": str(brokers),
            "KAFKA_VERSION": VERSION,
            "KAFKA_CLUSTER_ID": cluster_id,
            **tls_facts,
        }

    def _cluster(self, home: Path, brokers: int) -> str:
        """The cluster id of this directory (made on first start); checks the broker count."""
        id_file, count_file = home / "cluster-id", home / "brokers"
        if id_file.exists():
            formatted = int(count_file.read_text())
            if formatted != brokers:
                raise ServiceUsageError(
                    f"the kafka cluster in {home} has {formatted} broker(s); start it with "
                    f"--brokers {formatted}, or use another --dir for {brokers}"
                )
            return id_file.read_text().strip()
        cluster_id = _cluster_id()
        count_file.write_text(f"{brokers}\n")
        id_file.write_text(cluster_id + "\n")
        return cluster_id

    def _format(self, home: Home, cluster_id: str, configs: list[Path]) -> None:
        """Format the nodes' storage, in parallel (each is a JVM start)."""
        java_bin = str(java.jdk() / "bin" / "java")
        running = [
            (
                config,
                subprocess.Popen(
                    [
                        java_bin, "-Xmx256m",
                        f"-Dlog4j2.configurationFile={JAVA_DIR / 'log4j2.properties'}",
                        "-cp", self.bundle.classpath(), "kafka.tools.StorageTool", "format",
                        "--ignore-formatted", "-t", cluster_id, "-c", str(config),
                    ],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                ),
            )
            for config in configs
        ]  # fmt: skip
        failures = []
        for config, proc in running:
            try:
                output, _ = proc.communicate(timeout=FORMAT_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
            if proc.returncode != 0:
                failures.append(f"{config}: exit {proc.returncode}\n{output.strip()}")
        if failures:
            raise ServiceError("formatting kafka storage failed:\n" + "\n".join(failures))


def _formatted(node_dir: Path) -> bool:
    return (node_dir / "data" / "meta.properties").exists()
