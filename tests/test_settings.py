"""``Settings.check_production``: which database credentials count as defaults."""

from __future__ import annotations

import pytest

from app.settings import Settings

DEFAULTS = "the database URL uses default credentials"


def problems(database_url: str, environment: str = "production") -> list[str]:
    return Settings(environment=environment, database_url=database_url, _env_file=None).check_production()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres:postgres@db:5432/fairaudit",
        "postgresql+psycopg://fairaudit:fairaudit@db/fairaudit",  # the user's own name
        "postgresql+psycopg://app:Password@db/fairaudit",  # case does not make it secret
        "postgresql+psycopg://admin:admin@db/fairaudit",  # let through by the old substring test
    ],
)
def test_well_known_passwords_are_refused(url: str) -> None:
    assert [p for p in problems(url) if p.startswith(DEFAULTS)] != []
    assert problems(url, environment="development") == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://fairaudit:trustworthy-9f2K%40x@db/fairaudit",  # refused by the old substring test
        "postgresql+psycopg://fairaudit@db/fairaudit",  # password from a file, PGPASSWORD or a certificate
        "postgresql+psycopg://postgres:Xq7-long-random@db/fairaudit?sslmode=verify-full",
    ],
)
def test_other_credentials_pass(url: str) -> None:
    assert problems(url) == []
