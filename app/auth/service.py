"""Creating organisations and keys, and authenticating a presented key. Never commits."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from app.auth import repository
from app.auth.keys import generate_key, secret_matches, split_key
from app.auth.models import ApiKey, Organisation
from app.auth.roles import ROLE_PERMISSIONS, Permission, Role
from app.core.errors import InputError
from app.core.fields import check_name
from app.db.base import utcnow


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved once per request from the API key."""

    organisation_id: str
    key_id: str
    role: Role

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


def ensure_organisation(session: Session, name: str) -> Organisation:
    name = check_name(name.strip(), "organisation name")
    org = repository.get_organisation_by_name(session, name)
    if org is None:
        org = Organisation(name=name)
        session.add(org)
        session.flush()
    return org


def create_key(session: Session, organisation_id: str, role: str, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; the plaintext is returned once and never stored."""
    name = check_name(name, "name", optional=True)
    try:
        parsed_role = Role(role)
    except ValueError:
        valid = ", ".join(r.value for r in Role)
        raise InputError(f"unknown role {role!r}; valid roles: {valid}") from None
    new = generate_key()
    key = ApiKey(
        organisation_id=organisation_id,
        role=parsed_role.value,
        name=name,
        prefix=new.prefix,
        secret_hash=new.secret_hash,
    )
    session.add(key)
    session.flush()
    return key, new.plaintext


def revoke_key(session: Session, organisation_id: str, key_id: str) -> ApiKey:
    key = repository.KEYS.get_or_404(session, organisation_id, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def authenticate(db: Connection | Session, presented: str) -> Principal | None:
    """Resolve a presented key, or None if it is malformed, unknown or revoked."""
    parts = split_key(presented)
    if parts is None:
        return None
    prefix, secret = parts
    key = repository.key_credentials(db, prefix)
    if key is None or key.revoked_at is not None or not secret_matches(secret, key.secret_hash):
        return None
    return Principal(organisation_id=key.organisation_id, key_id=key.id, role=Role(key.role))
