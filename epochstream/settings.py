"""The one settings object. Built at an entry point and passed down; nothing reads the environment at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob, read from `EPOCHSTREAM_*` environment variables; command-line flags may override."""

    model_config = SettingsConfigDict(env_prefix="EPOCHSTREAM_", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        description="Broker URL. Unset: use the stack started by `epochstream up`, or start an embedded server.",
    )
    data_dir: Path = Field(default=Path("./epochstream-data"), description="Parquet log, projections, catalog.")
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
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    api_token: SecretStr | None = None
    system_interval_s: float = Field(default=10.0, gt=0)
    max_deliveries: int = Field(default=5, ge=1, description="Deliveries before a failing entry is dead-lettered.")
    drain_batch: int = Field(default=5000, ge=1, description="Stream entries read per XREADGROUP.")

    def resolved_spool_dir(self) -> Path:
        return self.spool_dir if self.spool_dir is not None else Path.home() / ".epochstream" / "spool"
