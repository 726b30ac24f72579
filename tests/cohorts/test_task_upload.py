"""Multi-class and multi-label cohorts over HTTP: upload, ingestion to ``ready``, the task in the response,
the cache and the database; bad labels refused with nothing left behind."""

from __future__ import annotations

import io
import zipfile

import pytest
from archives import make_zip, png_bytes, upload
from sqlalchemy import func, select

from app.cohorts.cache import load_cohort_arrays
from app.cohorts.config import ISIC_GROUND_TRUTH, ISIC_METADATA
from app.cohorts.models import Cohort, CohortItem
from app.jobs.models import Job
from app.modelpkg.task import Task

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CLASSES = ["nevus", "melanoma", "bcc"]
BASE = {"image_column": "image", "patient_id_column": "patient", "sensitive_attributes": ["sex"], "image_size": 16}


def archive(manifest: list[str], n: int, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i in range(n):
            zf.writestr(f"img/{i}.png", png_bytes(i % 256, size=16))
        zf.writestr("manifest.csv", "\n".join(manifest) + "\n")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buffer.getvalue()


def multiclass_zip(n: int = 48) -> bytes:
    rows = ["image,label,sex,patient"]
    rows += [f"img/{i}.png,{CLASSES[i % 3]},{'female' if i % 4 < 2 else 'male'},p{i // 6}" for i in range(n)]
    return archive(rows, n)


def test_a_multiclass_cohort_ingests_to_ready_with_its_task(client, keys, settings, run_jobs, session_factory):
    headers = keys.headers("auditor")
    config = {"name": "derm3", **BASE, "label_column": "label", "task": "multiclass", "classes": CLASSES}
    response = upload(client, headers, multiclass_zip(), config)
    assert response.status_code == 202, response.json()
    assert response.json()["task"] == "multiclass" and response.json()["classes"] == CLASSES
    run_jobs()
    cohort = client.get(f"/v1/cohorts/{response.json()['id']}", headers=headers).json()
    assert cohort["status"] == "ready", cohort
    assert (cohort["task"], cohort["classes"]) == ("multiclass", CLASSES)
    summary = cohort["summary"]
    assert summary["classes"] == CLASSES
    assert sum(sum(s["classes"].values()) for s in summary["splits"].values()) == 48
    assert all(summary["splits"]["train"]["classes"][c] > 0 for c in CLASSES)
    assert {c["class"] for c in summary["groupings"]["sex"]["cells"]} == set(CLASSES)

    arrays = load_cohort_arrays(settings.data_dir / "cohorts" / cohort["id"] / "cache")
    assert arrays.task == Task(kind="multiclass", classes=CLASSES)
    assert sorted(set(arrays.labels.tolist())) == [0, 1, 2]
    with session_factory() as session:
        items = session.scalars(select(CohortItem).where(CohortItem.cohort_id == cohort["id"])).all()
    assert all(
        arrays.labels[item.position] == CLASSES.index(["nevus", "melanoma", "bcc"][int(item.item_id[4:-4]) % 3])
        for item in items
    )
    listed = client.get("/v1/cohorts", headers=headers).json()["items"]
    assert [(c["task"], c["classes"]) for c in listed] == [("multiclass", CLASSES)]


def test_a_multilabel_cohort_keeps_finding_vectors(client, keys, settings, run_jobs, session_factory):
    headers = keys.headers("auditor")
    rows = ["image,edema,effusion,sex,patient"]
    rows += [
        f"img/{i}.png,{i % 2},{'' if i % 5 == 0 else int(i % 3 == 0)},{'female' if i % 2 else 'male'},p{i // 2}"
        for i in range(40)
    ]
    config = {
        "name": "cxr2",
        **BASE,
        "task": "multilabel",
        "finding_columns": ["edema", "effusion"],
        "blank_as": "missing",
    }
    response = upload(client, headers, archive(rows, 40), config)
    assert response.status_code == 202, response.json()
    run_jobs()
    cohort = client.get(f"/v1/cohorts/{response.json()['id']}", headers=headers).json()
    assert cohort["status"] == "ready" and (cohort["task"], cohort["classes"]) == ("multilabel", ["edema", "effusion"])
    arrays = load_cohort_arrays(settings.data_dir / "cohorts" / cohort["id"] / "cache")
    assert arrays.labels.shape == (40, 2)
    with session_factory() as session:
        item = session.scalars(
            select(CohortItem).where(CohortItem.cohort_id == cohort["id"], CohortItem.item_id == "img/5.png")
        ).one()
    assert item.findings == [1, -1] and item.label == 1
    assert arrays.labels[item.position].tolist() == [1, -1]


def test_isic_challenge_files_upload_as_shipped(client, keys, run_jobs):
    headers = keys.headers("auditor")
    codes = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"] * 3
    gt = ["image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK"]
    gt += [
        f"ISIC_{i}," + ",".join("1.0" if c == code else "0.0" for c in [*codes[:8], "UNK"])
        for i, code in enumerate(codes)
    ]
    meta = ["image,age_approx,anatom_site_general,lesion_id,sex"]
    meta += [f"ISIC_{i},{30 + i},torso,L{i},{'male' if i % 2 else 'female'}" for i in range(len(codes))]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i in range(len(codes)):
            zf.writestr(f"ISIC_2019_Training_Input/ISIC_{i}.jpg", png_bytes(i, size=16))
        zf.writestr(ISIC_GROUND_TRUTH, "\n".join(gt) + "\n")
        zf.writestr(ISIC_METADATA, "\n".join(meta) + "\n")
    config = {"name": "isic", "preset": "isic2019", "task": "multiclass", "image_size": 16}
    response = upload(client, headers, buffer.getvalue(), config)
    assert response.status_code == 202, response.json()
    assert response.json()["classes"] == codes[:8]
    run_jobs()
    assert client.get(f"/v1/cohorts/{response.json()['id']}", headers=headers).json()["status"] == "ready"


def test_bad_labels_are_refused_with_nothing_left_behind(client, keys, settings, session_factory):
    headers = keys.headers("auditor")
    rows = ["image,label,sex,patient", "img/0.png,nevus,male,p0", "img/1.png,wart,female,p1"]
    config = {"name": "bad", **BASE, "label_column": "label", "task": "multiclass", "classes": ["nevus", "bcc"]}
    response = upload(client, headers, archive(rows, 2), config)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"row": 3, "column": "label", "message": "label 'wart' is not one of the declared classes (bcc, nevus)"}
    ]
    rows = ["image,edema,effusion,sex,patient", "img/0.png,1,0,male,p0", "img/1.png,,,female,p1"]
    config = {
        "name": "bad",
        **BASE,
        "task": "multilabel",
        "finding_columns": ["edema", "effusion"],
        "blank_as": "missing",
    }
    response = upload(client, headers, archive(rows, 2), config)
    assert response.status_code == 422 and response.json()["errors"][0]["row"] == 3
    root = settings.data_dir / "cohorts"
    assert not root.exists() or list(root.iterdir()) == []
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Cohort)) == 0
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_binary_upload_says_binary_and_stores_no_findings(client, keys, session_factory):
    response = upload(client, keys.headers("auditor"), make_zip(12))
    assert response.status_code == 202, response.json()
    assert (response.json()["task"], response.json()["classes"]) == ("binary", [])
    assert response.json()["config"]["task"] == "binary"
    with session_factory() as session:
        items = session.scalars(select(CohortItem)).all()
        cohort = session.get(Cohort, response.json()["id"])
    assert cohort is not None and cohort.task == {"kind": "binary", "classes": [], "merged": {}}
    assert [i.label for i in sorted(items, key=lambda i: i.position)] == [i % 2 for i in range(12)]
    assert all(i.findings is None for i in items)
