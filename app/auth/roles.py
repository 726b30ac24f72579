"""Roles and what each may do. Every endpoint names the permission it needs."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    auditor = "auditor"
    predictor = "predictor"


class Permission(StrEnum):
    manage_keys = "manage_keys"
    read = "read"  # cohorts, jobs, evaluations, model metadata
    write = "write"  # upload cohorts, start/cancel jobs, audits, promote models
    predict = "predict"  # call prediction and post outcomes


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.auditor: frozenset({Permission.read, Permission.write, Permission.predict}),
    Role.predictor: frozenset({Permission.predict}),
}
