"""Every setting is an environment variable with the ``LEDGER_`` prefix."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The ledger's settings, read from the environment (and a ``.env`` file, if present)."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./ledger.db",
        description="sqlite:///<path> (embedded default) or postgresql://user:pass@host:port/db",
    )
    snapshot_interval: int = Field(
        default=20, ge=0, description="Snapshot a stream every N events (0: never)."
    )
    event_partitions: int = Field(
        default=16, ge=1, le=1024, description="Hash partitions of the events table (migration)."
    )
    db_pool_size: int = Field(default=5, ge=1, description="Database connections kept open.")
    db_max_overflow: int = Field(default=10, ge=0, description="Extra connections under load.")
    projections: Literal["on", "off"] = Field(
        default="on",
        description="on: this process keeps the read models up to date in the background;"
        " off: another process does (`ledger projections run --follow`).",
    )
    min_position_timeout: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Seconds a read waits for the read models to reach its min_position.",
    )

    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 secret JWTs are signed with (unless a public key is set)."
    )
    jwt_public_key: str | None = Field(
        default=None, description="PEM public key of RS256-signed JWTs (takes precedence)."
    )
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of JWTs, if set.")
    jwt_audience: str | None = Field(default=None, description="Required `aud` of JWTs, if set.")

    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that seals secrets kept in events, such as webhook signing secrets"
        " (`ledger secret-key` prints a new one); webhooks need it.",
    )
    read_role: str = Field(
        default="ledger_reader",
        description="PostgreSQL role API reads switch to in every tenant-scoped transaction, so"
        " row-level security holds them to the caller's tenant (made by `ledger db upgrade`"
        " when the user may create roles); empty, or a role this user cannot switch to:"
        " reads run as the user itself, still filtered by tenant.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Accept webhook URLs resolving to private, loopback or link-local addresses"
        " (tests and on-premises use).",
    )
    rate_limit_per_second: int = Field(
        default=100,
        ge=1,
        description="Requests per second a tenant may make, unless its own settings say otherwise.",
    )
    log_requests: bool = Field(default=True, description="Log one JSON line per request.")

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        description="Comma-separated host:port of the Kafka brokers; unset: no Kafka, alerts and"
        " webhook deliveries run in-process from the event store.",
    )
    kafka_topic: str = Field(
        default="ledger.events", min_length=1, description="The topic `ledger relay` publishes to."
    )
    kafka_dlq_topic: str = Field(
        default="ledger.webhooks.dlq",
        min_length=1,
        description="Where webhook deliveries that ran out of attempts are parked.",
    )
    kafka_session_timeout_ms: int = Field(
        default=45000,
        ge=1000,
        le=300000,
        description="How long a consumer may go silent before its group hands its partitions to"
        " another member (a group join also takes about half of it).",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, le=100, description="Attempts of one delivery before it is dead-lettered."
    )
    webhook_backoff_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Pause after a delivery's first failure; doubled after each later one"
        " (with random jitter of up to half of it).",
    )
    webhook_backoff_max_seconds: float = Field(
        default=600.0, gt=0, description="The longest pause between two attempts of a delivery."
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="How long one delivery attempt may take."
    )
    webhook_workers: int = Field(
        default=8, ge=1, le=256, description="Deliveries sent at once (one per webhook at most)."
    )

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return url

    @field_validator("projections", mode="before")
    @classmethod
    def _on_or_off(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def kafka_servers(self) -> list[str]:
        """The bootstrap servers (empty: Kafka is not configured)."""
        text = self.kafka_bootstrap_servers or ""
        return [server.strip() for server in text.split(",") if server.strip()]

    @property
    def kafka_group_timeouts(self) -> dict[str, int]:
        """Consumer options of the group membership (session timeout, heartbeat)."""
        session = self.kafka_session_timeout_ms
        return {"session_timeout_ms": session, "heartbeat_interval_ms": min(3000, session // 3)}

    @property
    def projections_enabled(self) -> bool:
        return self.projections == "on"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite:///")

    @property
    def sqlite_path(self) -> str:
        return self.database_url.removeprefix("sqlite:///")

    @property
    def sqlalchemy_url(self) -> str:
        """The same database for SQLAlchemy and Alembic (psycopg 3 driver on PostgreSQL)."""
        if self.is_sqlite:
            return self.database_url
        return "postgresql+psycopg://" + self.database_url.split("://", 1)[1]
