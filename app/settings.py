"""Service settings, read from ``FAIRAUDIT_*`` environment variables (or a ``.env`` file).

The defaults are the embedded deployment: a SQLite file and local folders under ``./var``; no
configuration is needed to start. ``Settings.check_production`` refuses unsafe values when
``FAIRAUDIT_ENVIRONMENT=production``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_METRICS_TOKEN_CHARS = 32  # a token anyone can send: long enough not to be guessed


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value may be a secret (the metrics token, a database URL's password)
    model_config = SettingsConfigDict(
        env_prefix="FAIRAUDIT_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = ""  # empty: sqlite file in data_dir
    data_dir: Path = Path("var/data")
    model_dir: Path = Path("models")
    db_pool_size: int = Field(
        default=16, ge=1, description="database connections the API keeps open (concurrent requests, row writer)"
    )
    host: str = "127.0.0.1"
    port: int = 8000

    # Jobs
    ray_address: str | None = None
    supervisor_enabled: bool = True
    max_concurrent_jobs: int = Field(default=1, ge=1)
    heartbeat_seconds: float = Field(default=2.0, gt=0)
    stale_after_seconds: float = Field(default=30.0, gt=0)
    cancel_grace_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)

    # Ray scale-out (with ray_address set; see app/jobs/ray_executor.py for what the cluster needs)
    ray_max_concurrent_jobs: int = Field(
        default=4, ge=1, description="jobs one supervisor keeps on the cluster at once (≤ the cluster's job slots)"
    )
    ray_cpus_per_job: float = Field(default=1.0, gt=0, description="CPUs each job's Ray task asks for")
    ray_gpus_per_job: float | None = Field(
        default=None,
        ge=0,
        description=(
            "GPUs a training task asks for unless its config says device=cpu (other jobs take none); "
            "unset: 1 when the cluster reports GPUs, else 0"
        ),
    )
    ray_ship_package: bool = Field(
        default=False, description="upload this app package to the cluster (nodes still need the dependencies)"
    )

    # Upload limits (archives and images are untrusted input)
    max_upload_bytes: int = Field(default=20 * 1024**3, gt=0)
    max_request_bytes: int = Field(default=256 * 1024**2, gt=0, description="any other request body")
    max_uncompressed_bytes: int = Field(default=50 * 1024**3, gt=0)
    max_compression_ratio: float = Field(default=200.0, gt=1)
    max_archive_entries: int = Field(
        default=500_000, gt=0, description="entries of one archive (zipfile holds ~360 B per entry in memory)"
    )
    max_image_pixels: int = Field(default=64_000_000, gt=0)
    ingest_workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1)

    # Orphaned work folders (app/housekeeping/orphans.py): removed at start-up and periodically
    orphan_sweep_enabled: bool = True
    orphan_sweep_interval_seconds: float = Field(default=300.0, gt=0, description="seconds between sweeps")
    alert_evaluation_enabled: bool = Field(default=True, description="evaluate alert rules in this process")
    alert_poll_seconds: float = Field(default=5.0, gt=0, description="longest wait between alert rule sweeps")
    webhook_delivery_enabled: bool = Field(default=True, description="deliver webhooks from this process")
    webhook_poll_seconds: float = Field(default=2.0, gt=0, description="seconds between looks for due deliveries")
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="connect, write and read, each")
    webhook_max_response_bytes: int = Field(default=4096, ge=0, description="of a receiver's answer kept in the log")
    webhook_max_attempts: int = Field(default=8, ge=1, description="tries of one delivery before it fails")
    webhook_backoff_seconds: float = Field(default=10.0, gt=0, description="first retry delay; doubles each try")
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_disable_after: int = Field(default=20, ge=1, description="consecutive failed attempts that disable one")
    orphan_min_age_seconds: float = Field(
        default=900.0,
        ge=0,
        description="a folder no row owns is removed only once nothing in it changed for this long",
    )

    # DICOM and image limits (issue 10: bombs refused before decoding; see app/cohorts/image_limits.py)
    max_dicom_header_bytes: int = Field(
        default=16 * 1024**2, gt=0, description="bytes a DICOM's elements before its pixel data may take"
    )

    # CSV uploads (cohort manifests, audit predictions): every size is checked before the work it limits
    csv_max_header_bytes: int = Field(default=64 * 1024, gt=0, description="the header row, checked before any row")
    csv_max_columns: int = Field(default=1000, gt=0)
    csv_max_row_bytes: int = Field(
        default=1024 * 1024, gt=0, description="one row (a quoted cell may span lines), read before it is parsed"
    )
    csv_max_cell_chars: int = Field(default=65_536, gt=0)
    csv_max_rows: int = Field(default=2_000_000, gt=0, description="data rows of one file")
    max_reported_errors: int = Field(
        default=200, ge=1, description="problems listed in one error response; the rest are counted"
    )
    audit_sync_max_rows: int = Field(
        default=20_000, ge=0, description="audits with more rows run as a job (202) instead of in the request"
    )

    # Serving
    max_predict_batch: int = Field(default=64, ge=1)
    model_cache_size: int = Field(default=4, ge=1)
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API server processes of `fairaudit serve`; the job supervisor and orphan sweep run in its parent",
    )
    key_cache_seconds: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="how long a process reuses a valid API key's check (0: never); a revoked key stops within this",
    )

    # Refused anonymous calls (no key, or an unknown or revoked one): per client address, past this many in a
    # window the API answers 429 with Retry-After and logs only the first such call (app/core/refusals.py)
    anonymous_refusals_per_window: int = Field(default=30, ge=1)
    anonymous_refusal_window_seconds: float = Field(default=60.0, gt=0)

    # Slow or hostile clients (app/server.py; uvicorn times out only idle keep-alive connections itself)
    header_timeout_seconds: float = Field(
        default=20.0, gt=0, description="a request's line and headers must arrive within this (from its first byte)"
    )
    body_timeout_seconds: float = Field(
        default=20.0, gt=0, description="each window this long must bring min_body_bytes_per_second × its length"
    )
    min_body_bytes_per_second: int = Field(default=500, ge=1, description="slowest body upload accepted")
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, description="request line and headers together")
    keep_alive_timeout_seconds: int = Field(default=5, ge=1, description="idle keep-alive connection")
    max_connections: int = Field(
        default=1000, ge=1, description="open connections (and running requests) before new requests get 503"
    )

    # Observability (app/observability/)
    log_format: Literal["json", "console"] = Field(
        default="json", description="log lines as JSON objects (one per line) or for people reading a terminal"
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="operator token for /metrics: every organisation's series and the process-wide ones"
    )
    event_ping_seconds: float = Field(
        default=15.0, gt=0, description="keep-alive comment interval of job event streams (idle proxies close)"
    )

    # Studies (app/studies/)
    max_study_jobs: int = Field(
        default=60,
        ge=1,
        le=10_000,
        description="training jobs one study may create (folds × seeds × configs, + final models)",
    )

    # Metrics
    bootstrap_resamples: int = Field(default=1000, ge=0)
    min_group_count: int = Field(default=10, ge=1)

    @field_validator("metrics_token")
    @classmethod
    def _long_metrics_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < MIN_METRICS_TOKEN_CHARS:
            raise ValueError(
                f"metrics_token must be at least {MIN_METRICS_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`)"
            )
        return token

    @model_validator(mode="after")
    def _fill_database_url(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'fairaudit.db').as_posix()}"
        return self

    def for_job_process(self) -> dict[str, Any]:
        """These settings as a job process receives them (JSON, re-validated there). Without the metrics
        token: a job has no use for it, and a secret dumps as a mask that would fail validation."""
        return self.model_dump(mode="json", exclude={"metrics_token"})

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def check_production(self) -> list[str]:
        """Problems that make these settings unsafe for a production deployment."""
        if self.environment != "production":
            return []
        problems = []
        if self.host not in ("127.0.0.1", "localhost", "::1") and self.is_sqlite:
            problems.append("SQLite must not be exposed on a public interface; use PostgreSQL")
        if _default_credentials(self.database_url):
            problems.append("the database URL uses default credentials (a well-known password, or the user's own name)")
        if self.max_upload_bytes > 100 * 1024**3:
            problems.append("max_upload_bytes above 100 GiB")
        if self.max_compression_ratio > 1000:
            problems.append("max_compression_ratio above 1000 invites zip bombs")
        return problems


# The passwords tried first against any database (installer and tutorial defaults), compared ignoring case.
WELL_KNOWN_PASSWORDS = frozenset({"postgres", "password", "admin", "root", "secret", "changeme", "fairaudit"})


def _default_credentials(database_url: str) -> bool:
    """Whether the URL logs in with a password anyone would guess. Only what the URL says can be
    judged: a URL without a password may be safe (a client certificate, a password file,
    ``PGPASSWORD``), and trust authentication is set on the server, out of sight. (A substring test
    once refused any URL containing "trust", e.g. the password "trustworthy-…", and let
    "admin:admin@" pass.)"""
    parts = urlsplit(database_url)  # a database URL is a URL: dialect+driver://user:password@host/db
    if parts.password is None:
        return False
    password, username = unquote(parts.password), unquote(parts.username or "")
    return password.lower() in WELL_KNOWN_PASSWORDS or password == username


@lru_cache
def get_settings() -> Settings:
    return Settings()
