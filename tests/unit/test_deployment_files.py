"""The deployment files are valid and agree with the code: docker-compose.yml passes Compose's
own validation, the kustomize manifests build, every service runs on the port the launcher
gives it, and every Kafka topic is declared with the partition count and config of
services/contracts/topics.py.

The tests that run a binary are async and run it in a worker thread: the session's services and
Kafka consumers share the event loop, and a test that held it for seconds (the first `go install`
of kustomize takes a minute) would cost them their heartbeats. `make test` builds kustomize
before pytest starts (`python -m tests.support.tools`); a test finding it missing builds it here,
off the loop."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.contracts import topics
from services.launcher.cli import SERVICES
from tests.support.tools import docker_compose, kustomize, say

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
KUSTOMIZATIONS = [DEPLOY / "kubernetes" / "base", DEPLOY / "kubernetes" / "overlays" / "production"]

IMAGE = "ghcr.io/omniroute/omniroute:0.1.0"
# The services with a database of their own.
PORTS = {"gateway": 8000, "inventory": 8001, "pricing": 8002, "orders": 8003, "webhooks": 8005}
# The store console: no database, no Kafka; it calls the gateway only.
CONSOLE_PORT = 8004
ALL_PORTS = {**PORTS, "console": CONSOLE_PORT}
# The migration step's order: the gateway's last, as in the docs.
MIGRATION_ORDER = ["inventory", "pricing", "orders", "webhooks", "gateway"]
# What each service consumes: its replicas beyond the smallest partition count get no partitions.
CONSUMES = {
    "inventory": [topics.INVENTORY_COMMANDS],
    "orders": [topics.INVENTORY_EVENTS, topics.INVENTORY_AVAILABILITY],
    "webhooks": [topics.ORDERS_EVENTS],
    "pricing": [],
    "gateway": [],
}


async def compose_config(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return await asyncio.to_thread(run_compose_config, args, env)


def run_compose_config(args: tuple[str, ...], env: dict[str, str] | None) -> dict[str, Any]:
    # Only what Compose needs from the environment, so a developer's own variables (a set
    # OTEL_EXPORTER_OTLP_ENDPOINT, say) do not change what is checked.
    clean = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    result = subprocess.run(
        [str(docker_compose()), "--file", str(COMPOSE_FILE), *args, "config", "--format", "json"],
        env={**clean, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


async def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    return await asyncio.to_thread(run_kustomize_build, directory)


def run_kustomize_build(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(kustomize(log=say)), "build", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# docker-compose.yml


async def test_compose_file_is_valid_and_starts_everything_in_order() -> None:
    services = (await compose_config())["services"]

    assert set(services) == {"kafka", "postgres", "migrate", *ALL_PORTS}
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, port in PORTS.items():
        service = services[name]
        assert service["image"] == IMAGE
        assert service["environment"]["OMNIROUTE_SERVICE"] == name
        assert service["environment"]["OMNIROUTE_KAFKA_ENABLE_IDEMPOTENCE"] == "true"
        assert f"127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"])
        conditions = {dep: spec["condition"] for dep, spec in service["depends_on"].items()}
        assert conditions["migrate"] == "service_completed_successfully"
        assert conditions["postgres"] == "service_healthy"
        if name != "gateway":  # the gateway is HTTP only
            assert conditions["kafka"] == "service_healthy"
    assert set(PORTS) - {"gateway"} <= set(services["gateway"]["depends_on"])
    assert services["migrate"]["command"][-len(MIGRATION_ORDER) :] == MIGRATION_ORDER


def test_every_service_is_served_on_the_port_the_launcher_gives_it() -> None:
    assert {spec.name: spec.default_port for spec in SERVICES} == ALL_PORTS
    assert {spec.name for spec in SERVICES if spec.database is not None} == set(PORTS)
    serve = (DEPLOY / "docker" / "serve").read_text()
    exposed = next(
        line.split()[1:]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("EXPOSE ")
    )
    for name, port in ALL_PORTS.items():
        assert f"    {name}) port={port} ;;" in serve, name
        assert str(port) in exposed, name


async def test_compose_runs_the_console_after_the_gateway_and_publishes_it_locally() -> None:
    services = (await compose_config())["services"]
    console = services["console"]
    env = console["environment"]

    assert console["image"] == IMAGE
    assert env["OMNIROUTE_SERVICE"] == "console"
    assert env["OTEL_SERVICE_NAME"] == "omniroute-console"
    assert env["OMNIROUTE_GATEWAY_URL"] == f"http://gateway:{PORTS['gateway']}"
    # No database, no Kafka: the gateway is all it talks to.
    assert not {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"} & set(env)
    assert env["OMNIROUTE_CONSOLE_SESSION_MINUTES"] is None  # passed through only when set
    conditions = {dep: spec["condition"] for dep, spec in console["depends_on"].items()}
    assert conditions == {"gateway": "service_healthy"}
    assert f"127.0.0.1:{CONSOLE_PORT}/readyz" in " ".join(console["healthcheck"]["test"])
    assert "console" not in services["migrate"]["command"]
    # People's screens and the API are published, on this machine only; nothing else is.
    published = {
        name: [
            (port["host_ip"], port["target"], str(port["published"])) for port in service["ports"]
        ]
        for name, service in services.items()
        if service.get("ports")
    }
    assert published == {
        "gateway": [("127.0.0.1", 8000, "8000")],
        "console": [("127.0.0.1", CONSOLE_PORT, str(CONSOLE_PORT))],
    }


async def test_compose_gives_each_service_its_database_and_the_gateway_every_url() -> None:
    services = (await compose_config())["services"]
    server = "postgresql://omniroute:omniroute@postgres:5432"
    migrate = services["migrate"]["environment"]
    for name, port in PORTS.items():
        url = f"{server}/omniroute_{name}"
        assert services[name]["environment"]["DATABASE_URL"] == url
        assert services[name]["environment"]["OTEL_SERVICE_NAME"] == f"omniroute-{name}"
        assert migrate[f"OMNIROUTE_{name.upper()}_DATABASE_URL"] == url
        if name != "gateway":
            gateway_env = services["gateway"]["environment"]
            assert gateway_env[f"OMNIROUTE_{name.upper()}_URL"] == f"http://{name}:{port}"
    assert services["gateway"]["environment"]["OMNIROUTE_WEBHOOKS_URL"] == "http://webhooks:8005"


async def test_compose_webhooks_reach_public_addresses_only() -> None:
    # Off by default, as in production; the file shows how to allow them for local testing.
    services = (await compose_config())["services"]
    assert "OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_ADDRESSES" not in services["webhooks"]["environment"]
    assert '# OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_ADDRESSES: "true"' in COMPOSE_FILE.read_text()


async def test_compose_secrets_are_passed_through_only_when_set() -> None:
    # A variable without a value (null) is left out of the container: never an empty key.
    unset = (await compose_config())["services"]
    assert unset["gateway"]["environment"]["OMNIROUTE_BOOTSTRAP_ADMIN_KEY"] is None
    assert unset["pricing"]["environment"]["OMNIROUTE_QUOTE_SIGNING_KEYS"] is None
    assert unset["inventory"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] is None

    keys = "new:" + "n" * 32 + ",old:" + "o" * 32
    env = {"OMNIROUTE_QUOTE_SIGNING_KEYS": keys, "OMNIROUTE_BOOTSTRAP_ADMIN_KEY": "omr_admin"}
    configured = (await compose_config(env=env))["services"]
    assert configured["pricing"]["environment"]["OMNIROUTE_QUOTE_SIGNING_KEYS"] == keys
    assert configured["orders"]["environment"]["OMNIROUTE_QUOTE_SIGNING_KEYS"] == keys
    assert configured["gateway"]["environment"]["OMNIROUTE_BOOTSTRAP_ADMIN_KEY"] == "omr_admin"


async def test_compose_observability_profile_adds_collector_and_jaeger() -> None:
    without = (await compose_config())["services"]
    assert "otel-collector" not in without
    assert "jaeger" not in without

    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}
    services = (await compose_config("--profile", "observability", env=env))["services"]
    assert {"otel-collector", "jaeger"} <= set(services)
    collector_config = ROOT / "deploy" / "compose" / "otel-collector.yaml"
    assert any(
        Path(volume["source"]) == collector_config
        for volume in services["otel-collector"]["volumes"]
    )
    assert yaml.safe_load(collector_config.read_text())["service"]["pipelines"]["traces"]
    for name in ALL_PORTS:
        assert (
            services[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
            == env["OTEL_EXPORTER_OTLP_ENDPOINT"]
        )


# Kafka topics


def kafka_topics(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = [doc for doc in documents if doc.get("kind") == "KafkaTopic"]
    by_name = {doc["spec"]["topicName"]: doc["spec"] for doc in found}
    assert len(by_name) == len(found), "a topic is declared twice"
    return by_name


def assert_topics_match_the_contract(declared: dict[str, dict[str, Any]]) -> None:
    assert set(declared) == {spec.name for spec in topics.ALL_TOPICS}
    for spec in topics.ALL_TOPICS:
        assert declared[spec.name]["partitions"] == spec.partitions, spec.name
        config = {key: str(value) for key, value in declared[spec.name].get("config", {}).items()}
        assert config.items() >= spec.config.items(), spec.name


def test_every_kafka_topic_manifest_has_the_contract_partitions_and_config() -> None:
    documents = [
        doc
        for path in sorted(DEPLOY.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict)
    ]
    assert_topics_match_the_contract(kafka_topics(documents))


# Kubernetes


@pytest.mark.timeout(900)  # the first run builds kustomize with `go install`
@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda path: path.name)
async def test_kustomize_builds_and_the_manifests_agree_with_the_code(directory: Path) -> None:
    documents = await kustomize_build(directory)
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in documents:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc

    assert_topics_match_the_contract(kafka_topics(documents))
    kafka = next(iter(by_kind["Kafka"].values()))
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    assert by_kind["KafkaNodePool"]

    for name, port in ALL_PORTS.items():
        pod = by_kind["Deployment"][name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == IMAGE
        assert container["ports"][0]["containerPort"] == port
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert "startupProbe" in container
        assert {"requests", "limits"} <= set(container["resources"])
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert by_kind["Service"][name]["spec"]["ports"][0]["port"] == port

        hpa = by_kind["HorizontalPodAutoscaler"][name]["spec"]
        assert hpa["scaleTargetRef"]["name"] == name
        assert by_kind["PodDisruptionBudget"][name]["spec"]["minAvailable"] == 1
        if CONSUMES.get(name):
            partitions = min(spec.partitions for spec in CONSUMES[name])
            assert hpa["maxReplicas"] <= partitions, name

    (job,) = by_kind["Job"].values()
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    command = migrate["command"]
    assert command[:3] == ["python", "-m", "services.infrastructure.migrations"]
    assert command[3:] == MIGRATION_ORDER
    migrate_keys = {env["name"]: secret_key(env) for env in migrate["env"]}
    for name in PORTS:
        assert migrate_keys[f"OMNIROUTE_{name.upper()}_DATABASE_URL"] == f"{name}-database-url"
        env = container_env(by_kind, by_kind["Deployment"][name])
        assert env["OMNIROUTE_SERVICE"] == name
        assert env["OTEL_SERVICE_NAME"] == f"omniroute-{name}"
        assert env["DATABASE_URL"] == ("secret", f"{name}-database-url")
        assert "OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_ADDRESSES" not in env
    gateway = container_env(by_kind, by_kind["Deployment"]["gateway"])
    for name, port in PORTS.items():
        if name != "gateway":
            assert gateway[f"OMNIROUTE_{name.upper()}_URL"] == f"http://{name}:{port}"
    assert gateway["OMNIROUTE_WEBHOOKS_URL"] == "http://webhooks:8005"
    if "Secret" in by_kind:  # the base's example Secret; production expects one made by hand
        secret = by_kind["Secret"]["omniroute-secrets"]
        assert {f"{name}-database-url" for name in PORTS} <= set(secret["data"])

    assert_webhooks_network_policy(by_kind["NetworkPolicy"]["webhooks"]["spec"])
    assert_console_manifests(by_kind)


def secret_key(env: dict[str, Any]) -> str:
    key: str = env["valueFrom"]["secretKeyRef"]["key"]
    return key


def container_env(
    by_kind: dict[str, dict[str, dict[str, Any]]], deployment: dict[str, Any]
) -> dict[str, Any]:
    """The container's environment: ConfigMap values as strings, Secret refs as
    ("secret", key)."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        env.update(by_kind["ConfigMap"][source["configMapRef"]["name"]]["data"])
    for item in container.get("env", []):
        env[item["name"]] = ("secret", secret_key(item)) if "valueFrom" in item else item["value"]
    return env


def assert_webhooks_network_policy(policy: dict[str, Any]) -> None:
    # Only the gateway (and Prometheus) may call webhooks; it may call out to the internet,
    # never to link-local (cloud metadata) or private addresses.
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "webhooks"}
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    sources = [
        peer["podSelector"]["matchLabels"] for rule in policy["ingress"] for peer in rule["from"]
    ]
    assert {"app.kubernetes.io/name": "gateway"} in sources
    assert all(label["app.kubernetes.io/name"] in {"gateway", "prometheus"} for label in sources)
    assert all(
        [port["port"] for port in rule["ports"]] == [PORTS["webhooks"]]
        for rule in policy["ingress"]
    )

    egress_ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert {53, 9092, 5432, 443, 80} <= egress_ports
    (internet,) = [
        rule for rule in policy["egress"] if {port["port"] for port in rule["ports"]} == {443, 80}
    ]
    blocks = {peer["ipBlock"]["cidr"]: set(peer["ipBlock"]["except"]) for peer in internet["to"]}
    assert blocks["0.0.0.0/0"] >= {
        "169.254.0.0/16",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
    }
    assert blocks["::/0"] >= {"fe80::/10", "fc00::/7"}


def assert_console_manifests(by_kind: dict[str, dict[str, dict[str, Any]]]) -> None:
    # The console reaches the gateway only, holds no secret, and keeps each person on the
    # replica that holds their sign-in for as long as it lasts.
    env = container_env(by_kind, by_kind["Deployment"]["console"])
    assert env["OMNIROUTE_SERVICE"] == "console"
    assert env["OTEL_SERVICE_NAME"] == "omniroute-console"
    assert env["OMNIROUTE_GATEWAY_URL"] == f"http://gateway:{PORTS['gateway']}"
    assert "DATABASE_URL" not in env
    assert not [value for value in env.values() if isinstance(value, tuple)], "a Secret"

    service = by_kind["Service"]["console"]["spec"]
    assert service["sessionAffinity"] == "ClientIP"
    session_seconds = float(env["OMNIROUTE_CONSOLE_SESSION_MINUTES"]) * 60
    assert service["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] >= session_seconds

    policy = by_kind["NetworkPolicy"]["console"]["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "console"}
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (ingress,) = policy["ingress"]
    assert "from" not in ingress  # people, through any Ingress controller
    assert [port["port"] for port in ingress["ports"]] == [CONSOLE_PORT]
    assert not any("ipBlock" in peer for rule in policy["egress"] for peer in rule.get("to", []))
    (gateway,) = [rule for rule in policy["egress"] if {p["port"] for p in rule["ports"]} == {8000}]
    assert gateway["to"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}
    ]
    egress_ports = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert egress_ports == {53, PORTS["gateway"], 4318}  # DNS, the gateway, traces
