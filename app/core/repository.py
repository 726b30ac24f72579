"""One way to read an organisation's rows: by id (else 404) and as filtered, paginated lists.

Every resource a key can name belongs to one organisation, and a key must never see another
organisation's rows (they answer 404, as if they did not exist). That rule used to be re-typed in
each domain ("select … where id = … and organisation_id = …, else 404") and in the routers' list
queries; one repository per model now applies it, and also leaves out rows that were soft-deleted
(a model with a ``deleted_at`` column), so no lookup can forget either.

Generic on purpose: it lives in ``core`` and knows no domain; each domain makes its own instance
(e.g. ``app.jobs.repository.JOBS``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.core.errors import NotFoundError
from app.core.pagination import paginate


class OrganisationOwned(Protocol):
    """A mapped model with a string id, an owning organisation and a creation time (the list order).
    (Typed as its instances see these columns; the class's column attributes are reached through
    ``column_of``, which checks that the table has them.)"""

    id: str
    organisation_id: str
    created_at: datetime


M = TypeVar("M", bound=OrganisationOwned)
T = TypeVar("T")


class OrgScopedRepository(Generic[M]):
    """Lookups of ``model`` rows within one organisation. ``noun`` names the resource in a 404
    ("job 'job_…' not found"). Never commits."""

    def __init__(self, model: type[M], noun: str) -> None:
        self.model, self.noun = model, noun
        self._id, self._organisation_id = column_of(model, "id"), column_of(model, "organisation_id")
        column_of(model, "created_at")  # the order of ``page``
        has_deleted_at = "deleted_at" in model.__table__.columns  # type: ignore[attr-defined]
        self._soft_deleted = column_of(model, "deleted_at") if has_deleted_at else None

    def query(self, organisation_id: str, **filters: Any) -> Select[M]:
        """The organisation's (not deleted) rows; each keyword filters a column by equality, and a
        ``None`` value leaves that column unfiltered (an omitted query parameter)."""
        query = select(self.model).where(self._organisation_id == organisation_id)
        if self._soft_deleted is not None:
            query = query.where(self._soft_deleted.is_(None))
        return where_equal(query, self.model, **filters)

    def find(self, session: Session, organisation_id: str, ident: str) -> M | None:
        return session.scalar(self.query(organisation_id).where(self._id == ident))

    def get_or_404(self, session: Session, organisation_id: str, ident: str) -> M:
        found = self.find(session, organisation_id, ident)
        if found is None:
            raise NotFoundError(self.noun, ident)
        return found

    def page(
        self, session: Session, organisation_id: str, limit: int, cursor: str | None, **filters: Any
    ) -> tuple[list[M], str | None]:
        """One page of ``query(organisation_id, **filters)``, newest first (``app.core.pagination``)."""
        return paginate(session, self.query(organisation_id, **filters), self.model, limit, cursor)


def column_of(model: Any, name: str) -> Any:
    """The mapped model's column attribute ``name``; a name that is not a column is a programming error."""
    if name not in model.__table__.columns:
        raise AttributeError(f"{model.__name__} has no column {name!r}")
    return getattr(model, name)


def where_equal(query: Select[T], model: Any, **filters: Any) -> Select[T]:
    """``query`` narrowed to rows whose columns equal the given values; a ``None`` value leaves that
    column unfiltered (an omitted query parameter)."""
    for name, value in filters.items():
        if value is not None:
            query = query.where(column_of(model, name) == value)
    return query
