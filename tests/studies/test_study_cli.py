"""``fairaudit study``: submits the body, follows the study's event stream to its end, says how it ended."""

from __future__ import annotations

import threading

import pytest
from live_server import wait_for
from sqlalchemy import select
from study_helpers import ready_cohort, study_body

from app.demo import follow_study
from app.studies.models import Study


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_study_command_follows_a_study_to_its_end(client, keys, session_factory, run_jobs, capsys):
    headers = keys.headers()
    cohort_id = ready_cohort(client, headers, run_jobs)
    client.headers.update(headers)
    with pytest.raises(SystemExit, match="configs"):
        follow_study(client, study_body(cohort_id, configs=[]))

    ended: dict[str, int] = {}
    follower = threading.Thread(target=lambda: ended.setdefault("code", follow_study(client, study_body(cohort_id))))
    follower.start()

    def submitted() -> str | None:
        with session_factory() as session:
            return session.scalar(select(Study.id))

    study_id = wait_for(submitted, timeout=60)
    assert client.post(f"/v1/studies/{study_id}/cancel").status_code == 202
    follower.join(timeout=60)
    assert not follower.is_alive() and ended["code"] == 1
    out = capsys.readouterr().out
    assert f"study {study_id} (tiny): 4 training jobs" in out and f"study {study_id}: cancelled" in out
