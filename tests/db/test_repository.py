"""The organisation-scoped repository every domain reads through, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.auth.service import ensure_organisation
from app.cohorts.models import Cohort
from app.cohorts.repository import COHORTS
from app.core.errors import NotFoundError
from app.core.repository import OrgScopedRepository
from app.db.base import utcnow
from app.db.engine import make_engine, make_session_factory, transaction
from app.jobs import state
from app.jobs.models import JobEvent
from app.jobs.repository import JOBS


@pytest.fixture
def factory(database_url: str):
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def cohort(organisation_id: str, name: str, *, deleted: bool = False) -> Cohort:
    return Cohort(
        organisation_id=organisation_id,
        name=name,
        preset="custom",
        config={},
        image_size=32,
        channels=3,
        attributes=[],
        status="deleted" if deleted else "ready",
        deleted_at=utcnow() if deleted else None,
    )


def organisations(factory: sessionmaker[Session]) -> tuple[str, str]:
    with transaction(factory) as session:
        return ensure_organisation(session, "Ours").id, ensure_organisation(session, "Theirs").id


def test_another_organisations_rows_and_deleted_rows_are_not_found(factory) -> None:
    ours, theirs = organisations(factory)
    with transaction(factory) as session:
        kept, gone, foreign = cohort(ours, "kept"), cohort(ours, "gone", deleted=True), cohort(theirs, "foreign")
        session.add_all([kept, gone, foreign])
    with factory() as session:
        assert COHORTS.get_or_404(session, ours, kept.id).name == "kept"
        for ident in (gone.id, foreign.id, "coh_unknown"):
            assert COHORTS.find(session, ours, ident) is None
            with pytest.raises(NotFoundError, match=f"cohort '{ident}' not found"):
                COHORTS.get_or_404(session, ours, ident)
        rows, next_cursor = COHORTS.page(session, ours, 10, None)
    assert [c.name for c in rows] == ["kept"] and next_cursor is None


def test_filters_skip_none_and_pages_follow_the_cursor(factory) -> None:
    ours, theirs = organisations(factory)
    with transaction(factory) as session:
        ids = [state.enqueue(session, organisation_id=ours, kind=k, config={}, max_attempts=1).id for k in "aab"]
        state.enqueue(session, organisation_id=theirs, kind="a", config={}, max_attempts=1)
    with factory() as session:
        everything, _ = JOBS.page(session, ours, 10, None, kind=None, status=None)
        first, cursor = JOBS.page(session, ours, 1, None, kind="a")
        second, end = JOBS.page(session, ours, 1, cursor, kind="a")
    assert {j.id for j in everything} == set(ids)
    assert cursor is not None and end is None
    assert {first[0].id, second[0].id} == set(ids[:2])


def test_a_filter_on_a_missing_column_is_a_programming_error(factory) -> None:
    ours, _ = organisations(factory)
    with pytest.raises(AttributeError, match="Job has no column 'colour'"):
        JOBS.query(ours, colour="red")
    with pytest.raises(AttributeError, match="has no column 'organisation_id'"):
        OrgScopedRepository(JobEvent, "event")  # events belong to a job, not to an organisation
