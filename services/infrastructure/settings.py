"""One settings mechanism: environment variables with the `OMNIROUTE_` prefix.

The two that differ per deployment also answer to the plain names operators expect
(`DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Public on purpose: it lets `make run` and tests work out of the box, and a warning is logged
# whenever it is in use.
DEVELOPMENT_QUOTE_KEYS = "dev:omniroute-development-key-not-for-production-use"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OMNIROUTE_", extra="ignore")

    service_name: str = "omniroute"
    host: str = "127.0.0.1"
    port: int = 8000

    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("OMNIROUTE_DATABASE_URL", "DATABASE_URL"),
        description="Defaults to database omniroute_<service_name> on localhost.",
    )
    # Connections kept open, and no more: one opened past the pool (overflow) is closed again
    # when returned, and under load that meant a new PostgreSQL backend every few requests
    # (measured: 14 a second, most of the database's CPU on a read). Requests beyond the pool
    # wait for a connection; more would not run faster on a few cores.
    database_pool_size: int = 10
    database_max_overflow: int = 0

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "OMNIROUTE_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    # The local broker has no idempotent producer; Apache Kafka does (see DESIGN.md §6).
    kafka_enable_idempotence: bool = False
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    kafka_create_topics: bool = True
    kafka_topic_replication_factor: int = 1

    outbox_batch_size: int = 500
    outbox_poll_interval_seconds: float = 0.5
    outbox_retention_hours: float = 24.0

    consumer_batch_max_records: int = Field(
        default=100,
        ge=1,
        description="Messages a consumer takes from one poll and applies in one database "
        "transaction (OMNIROUTE_CONSUMER_BATCH_MAX_RECORDS), each still with its own inbox "
        "row. Larger batches commit less often but hold their locks, and keep the first "
        "message's effect from being seen, longer.",
    )
    consumer_fetch_max_wait_ms: int = Field(
        default=20,
        ge=1,
        le=500,
        description="How long the broker may hold a consumer's fetch when nothing is there yet "
        "(OMNIROUTE_CONSUMER_FETCH_MAX_WAIT_MS). A broker that holds it that long even when "
        "messages arrive meanwhile (the embedded one) adds up to this at every hop of an order: "
        "at Kafka's 500 ms default, accepted->confirmed took 441 ms (p50) instead of 89 ms.",
    )
    consumer_batch_timeout_ms: int = Field(
        default=10,
        ge=1,
        description="How long an idle consumer waits for messages before it polls again "
        "(OMNIROUTE_CONSUMER_BATCH_TIMEOUT_MS); a poll returns as soon as messages are there, "
        "so this bounds the latency an idle consumer adds.",
    )
    consumer_max_attempts: int = Field(
        default=5,
        description="Attempts at a message that keeps failing with a non-transient error before it "
        "is moved to the dead-letter table, so one bad message never blocks its partition.",
    )

    quote_signing_keys: str = Field(
        default=DEVELOPMENT_QUOTE_KEYS,
        description="'id:secret' pairs, comma-separated; the first signs, all verify.",
    )

    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    @model_validator(mode="after")
    def _default_database(self) -> Self:
        # Derived here rather than overridden per service: redefining the field in a subclass
        # would drop the DATABASE_URL alias.
        if not self.database_url:
            self.database_url = (
                f"postgresql+asyncpg://postgres@localhost/omniroute_{self.service_name}"
            )
        return self
