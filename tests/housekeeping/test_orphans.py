"""Orphaned work folders: removed when no row owns them, and nothing else ever is."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
import zipfile
from pathlib import Path

import httpx
from archives import CONFIG, make_zip, png_bytes, upload
from live_server import start_server, wait_for

from app.db.engine import make_read_session_factory, transaction
from app.db.live_work import hold_until_settled
from app.housekeeping.orphans import sweep
from app.jobs.models import Job

HOUR = 3600.0


def folder_with_files(path: Path, n: int = 3) -> Path:
    (path / "sub").mkdir(parents=True)
    for i in range(n):
        (path / "sub" / f"{i}.bin").write_bytes(os.urandom(1000))
    return path


def fake_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def tree(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


def test_a_sweep_removes_exactly_the_folders_no_row_owns(client, keys, settings, session_factory):
    headers = keys.headers()
    data, models = settings.data_dir, settings.model_dir
    live = upload(client, headers, make_zip(6)).json()  # ingestion queued: its row owns its folder
    live_job = live["ingest_job_id"]
    gone = upload(client, headers, make_zip(6)).json()
    assert client.delete(f"/v1/cohorts/{gone['id']}", headers=headers).status_code == 200
    folder_with_files(data / "cohorts" / gone["id"])  # what a straggling run might write after DELETE
    with transaction(session_factory) as session:  # an ended job
        ended = session.get(Job, gone["ingest_job_id"])
        assert ended is not None and ended.status == "cancelled"

    keep = [
        data / "cohorts" / live["id"],
        folder_with_files(data / "jobs" / live_job),  # a queued job's scratch (checkpoints of a retry)
        folder_with_files(models / f".staging-{live_job}"),
        folder_with_files(models / ("mdl_" + live_job.removeprefix("job_"))),  # published, row not yet committed
        folder_with_files(data / "weights"),  # not a work folder
        folder_with_files(data / "cohorts" / "notes"),  # not an id
        folder_with_files(models / "mdl_handmade"),
    ]
    outside = folder_with_files(settings.data_dir.parent / "elsewhere")
    link = data / "cohorts" / fake_id("coh")
    link.symlink_to(outside, target_is_directory=True)  # a link is never followed nor removed
    orphans = [
        data / "cohorts" / gone["id"],
        folder_with_files(data / "cohorts" / fake_id("coh")),  # an upload killed before its commit
        folder_with_files(data / "jobs" / gone["ingest_job_id"]),
        folder_with_files(data / "jobs" / fake_id("job")),
        folder_with_files(models / f".staging-{fake_id('job')}"),
        folder_with_files(models / fake_id("mdl")),
        folder_with_files(data / "evaluations" / fake_id("evl")),
    ]
    keep_trees = {path: tree(path) for path in keep}
    read = make_read_session_factory(session_factory.kw["bind"])
    young = settings.model_copy(update={"orphan_min_age_seconds": HOUR})

    assert sweep(young, read) == [], "nothing is an hour old yet"
    held = folder_with_files(data / "cohorts" / fake_id("coh"))
    with session_factory() as request:  # an upload in this process, before its commit
        hold_until_settled(request, held)
        removed = sweep(young, read, now=time.time() + 2 * HOUR)
        assert held.exists()
    assert sorted(r.path for r in removed) == sorted(orphans)
    assert {r.path: r.bytes for r in removed}[orphans[1]] == 3000
    for path in orphans:
        assert not path.exists()
    for path, files in keep_trees.items():
        assert tree(path) == files, path
    assert link.is_symlink() and tree(outside) == ["sub", "sub/0.bin", "sub/1.bin", "sub/2.bin"]
    assert [r.path for r in sweep(young, read, now=time.time() + 2 * HOUR)] == [held], "settled, unowned"


def test_a_sweep_judges_more_folders_than_one_query_may_name(client, keys, settings, session_factory):
    live = upload(client, keys.headers(), make_zip(4)).json()["id"]
    root = settings.data_dir / "cohorts"
    orphans = {root / fake_id("coh") for _ in range(1200)}  # above SQLite's old 999-parameter cap, 3 batches
    for folder in orphans:
        folder.mkdir()
    old = settings.model_copy(update={"orphan_min_age_seconds": 0.0})
    removed = sweep(old, make_read_session_factory(session_factory.kw["bind"]), now=time.time() + 1)
    assert {r.path for r in removed} == orphans
    assert cohort_folders(settings) == {live}


def write_archive(path: Path, padding_mb: int, n: int = 12) -> Path:
    """A valid cohort archive made large by an incompressible file it does not list."""
    rows = ["image,label,sex,age,patient_id"]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(n):
            zf.writestr(f"img/{i}.png", png_bytes(i * 7 % 256))
            rows.append(f"img/{i}.png,{i % 2},{'female' if i % 3 else 'male'},{30 + i},p{i}")
        zf.writestr("manifest.csv", "\n".join(rows) + "\n")
        with zf.open("padding.bin", "w") as out:
            for _ in range(padding_mb):
                out.write(os.urandom(1 << 20))
    return path


def post_archive(url: str, headers: dict[str, str], archive: Path) -> httpx.Response:
    with archive.open("rb") as body:  # streamed from the file, never held in memory
        return httpx.post(
            f"{url}/v1/cohorts",
            headers=headers,
            files={"archive": ("cohort.zip", body)},
            data={"config": json.dumps(CONFIG)},
            timeout=120,
        )


def cohort_folders(settings) -> set[str]:
    root = settings.data_dir / "cohorts"
    return {p.name for p in root.iterdir()} if root.exists() else set()


def test_a_server_killed_mid_upload_leaves_an_orphan_that_the_restart_removes_and_nothing_else(
    client, keys, settings, tmp_path
):
    headers = keys.headers()
    live = upload(client, headers, make_zip(8)).json()
    archive = write_archive(tmp_path / "big.zip", padding_mb=300)

    server = start_server(settings)
    try:
        before = cohort_folders(settings)
        sender = threading.Thread(target=lambda: _ignore_errors(post_archive, server.url, headers, archive))
        sender.start()

        def upload_being_written() -> Path | None:
            new = cohort_folders(settings) - before
            spool = [settings.data_dir / "cohorts" / name for name in new]
            return next((p for p in spool if sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) > 1e7), None)

        orphan = wait_for(upload_being_written, timeout=120, step=0.005)
        server.kill()
        sender.join(timeout=60)
        assert orphan.exists(), "the killed upload left its folder behind"

        fast_sweeps = {"FAIRAUDIT_ORPHAN_MIN_AGE_SECONDS": "0", "FAIRAUDIT_ORPHAN_SWEEP_INTERVAL_SECONDS": "0.05"}
        server = start_server(settings, server.port, extra_env=fast_sweeps)
        wait_for(lambda: not orphan.exists(), timeout=30)
        # An upload made while the sweeps run every 50 ms: its folder has no committed row until the
        # request ends, and must survive all of them.
        response = post_archive(server.url, headers, write_archive(tmp_path / "second.zip", padding_mb=150))
        assert response.status_code == 202, response.text
        second = response.json()["id"]
        wait_for(
            lambda: client.get(f"/v1/cohorts/{second}", headers=headers).json()["status"] != "ingesting", timeout=120
        )
    finally:
        server.stop()
    assert client.get(f"/v1/cohorts/{second}", headers=headers).json()["status"] == "ready"
    assert (settings.data_dir / "cohorts" / second / "cache").is_dir()  # its decoded images survived the sweeps
    assert client.get(f"/v1/cohorts/{live['id']}", headers=headers).json()["status"] == "ready"
    # ready means its originals survived every sweep until ingestion decoded them (then deleted them)
    assert (settings.data_dir / "cohorts" / live["id"] / "cache").is_dir()


def _ignore_errors(fn, *args) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server is killed mid-request
        fn(*args)
