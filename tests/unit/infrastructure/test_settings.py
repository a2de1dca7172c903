"""Settings come from the environment, under the OMNIROUTE_ prefix or the plain names operators use."""

from __future__ import annotations

import pytest

from services.inventory.settings import InventorySettings


def test_defaults_name_the_service_database(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "OMNIROUTE_DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    settings = InventorySettings()
    assert settings.database_url == "postgresql+asyncpg://postgres@localhost/omniroute_inventory"
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.port == 8001


def test_plain_operator_names_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.internal/inventory")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("OMNIROUTE_RESERVATION_SWEEP_INTERVAL_SECONDS", "2.5")
    settings = InventorySettings()
    assert settings.database_url == "postgresql://db.internal/inventory"
    assert settings.kafka_bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert settings.reservation_sweep_interval_seconds == 2.5


def test_the_prefixed_name_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://plain/x")
    monkeypatch.setenv("OMNIROUTE_DATABASE_URL", "postgresql://prefixed/x")
    assert InventorySettings().database_url == "postgresql://prefixed/x"
