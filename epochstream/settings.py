"""The one settings object. Built at an entry point and passed down; nothing reads the environment at import."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob, read from `EPOCHSTREAM_*` environment variables; command-line flags may override."""

    model_config = SettingsConfigDict(env_prefix="EPOCHSTREAM_", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        description="Broker of the event streams: redis://host:6379/0, or a Redis Cluster as "
                    "redis+cluster://host:port[,host:port...] (rediss+cluster:// for TLS). Unset: use the stack "
                    "started by `epochstream up`, or start an embedded server.",
    )
    queue_url: str | None = Field(
        default=None,
        description="Standalone Redis for RQ's queues and jobs and the drain locks. Default: the REDIS_URL "
                    "server; required when REDIS_URL is a cluster (RQ cannot run on one).",
    )
    data_dir: Path = Field(default=Path("./epochstream-data"), description="Parquet log, read model, catalog.")
    log_url: str = Field(
        default="",
        pattern=r"^$|^s3://[^/]{3,}(/.*)?$",
        description="Where the Parquet log lives. Empty: DATA_DIR/log. s3://bucket/prefix: S3-compatible object "
                    "storage, endpoint and credentials from the standard AWS variables (AWS_ENDPOINT_URL, "
                    "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION); the catalog, snapshots, "
                    "quarantine and spool stay in each host's DATA_DIR.",
    )
    read_model_url: str = Field(
        default="",
        pattern=r"^$|^postgres(ql)?://",
        description="Where the read model lives. Empty: SQLite under DATA_DIR/readmodel (one host). "
                    "postgresql://user:password@host:5432/database: PostgreSQL (psycopg 3), shared by the worker "
                    "and API hosts; every generation in its own schema, the one in use named in "
                    "public.epochstream_readmodel.",
    )
    partitions: int = Field(default=8, ge=1, le=1024, description="Number of event stream partitions.")
    namespace: str = Field(
        default="epochstream",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Prefix of every Redis key; lets several deployments (or test runs) share one server.",
    )
    spool_dir: Path | None = Field(
        default=None, description="Producer's on-disk spool while Redis is away. Default: ~/.epochstream/spool."
    )
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    spool_segment_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="A spool segment file is closed and a new one begun past this."
    )
    spool_fsync_s: float = Field(
        default=1.0, ge=0, description="Spooled bytes are fsynced at most this often (0: after every write)."
    )
    publish_queue_size: int = Field(
        default=100_000, ge=1, description="Events a producer holds in memory before it drops (and says so once)."
    )
    publish_timeout_s: float = Field(
        default=2.0, gt=0, description="Producer's connect/read timeout; a slower broker counts as away: spool."
    )
    exit_flush_s: float = Field(
        default=5.0, ge=0, description="How long a run's end, SIGTERM or process exit waits to deliver what is left."
    )
    install_signal_handlers: bool = Field(
        default=True, description="Producer: on SIGTERM/SIGINT publish `interrupted`, then chain to the old handler."
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    api_token: SecretStr | None = None
    system_interval_s: float = Field(default=10.0, gt=0)
    max_deliveries: int = Field(default=5, ge=1, description="Deliveries before a failing entry is dead-lettered.")
    drain_batch: int = Field(default=5000, ge=1, description="Stream entries read per XREADGROUP.")
    drain_window_ms: int = Field(
        default=500, ge=0, description="A partition is read at most this often once caught up (by a drain "
        "lingering on it, or by turns rotating through the partitions), so a trickle is applied in batches "
        "(each batch and turn has a fixed cost of a few to ~20 ms) at the price of up to this much freshness."
    )
    claim_idle_ms: int = Field(
        default=30_000, ge=0, description="Pending this long without an ack, an entry is reclaimed (XAUTOCLAIM)."
    )
    drain_max_s: float = Field(
        default=30.0, gt=0, description="A drain job yields its worker after this long; the scheduler requeues it."
    )
    compact_every_s: float = Field(
        default=600.0, ge=0, description="The scheduler queues a compaction of the log this often (0: never)."
    )
    compact_min_age_s: float = Field(
        default=300.0, ge=0, description="Scheduled compactions merge only segments older than this."
    )
    future_skew_s: float = Field(
        default=86_400.0, ge=0, description="An event stamped further than this ahead of its ingestion (a wrong "
        "clock) is ordered by its ingestion time (listing, last seen, staleness) and its run flagged "
        "(`clock_ahead_s`); its own `ts` is stored as sent. Workers and `rebuild` must agree on it."
    )

    def resolved_spool_dir(self) -> Path:
        return self.spool_dir if self.spool_dir is not None else Path.home() / ".epochstream" / "spool"


def settings_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that hands `settings` to a child process: every field that has a value (the stack's
    children and the tests' subprocesses are both given their settings this way)."""
    env = dict(os.environ if base is None else base)
    for name, value in settings:
        key = f"{Settings.model_config['env_prefix']}{name.upper()}"
        if value is None:
            env.pop(key, None)
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif isinstance(value, Path):
            value = value.resolve()
        env[key] = str(value)
    return env
