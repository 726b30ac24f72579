"""What runs is what was verified: a file replaced on disk after its hash was checked is never run.

Each test swaps a graph for a differently weighted one (another seed, same shapes) at the worst
moment: after verification, just before ONNX Runtime builds its session. The package, the serving
loader and the evaluation job must all still run the verified bytes; the next verification notices.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelpkg_helpers import SIZE, export_tiny, pixels
from sqlalchemy.orm import Session, sessionmaker

from app.auth.service import ensure_organisation
from app.cohorts.cache import write_items
from app.cohorts.image_store import create_image_store
from app.cohorts.models import Cohort
from app.cohorts.storage import cache_dir
from app.core.errors import InputError
from app.db.engine import transaction
from app.fairness.storage import evaluation_dir, load_predictions
from app.jobs import state
from app.jobs.context import JobContext
from app.modelpkg.errors import TamperedModelError
from app.modelpkg.folder import verify_manifest
from app.modelpkg.onnx_chain import CPU, make_session
from app.modelpkg.outputs import sigmoid
from app.modelpkg.preprocessing import Preprocessing
from app.modelpkg.task import Task
from app.serving.integrity import RefusedModelError
from app.serving.models import ModelVersion
from app.serving.runtime import ModelCache, ModelFiles, load_model
from app.settings import Settings
from app.training.export import ExportedModel
from app.training_jobs import evaluate_job

WORKER = "test-worker"
N = 24


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a differently weighted model: the files an attacker or a mistake swaps in."""
    folder = tmp_path_factory.mktemp("other") / "mdl_other"
    export_tiny(folder, seed=1)
    return folder


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExportedModel]:
    folder = tmp_path_factory.mktemp("original") / "mdl_original"
    return folder, export_tiny(folder, seed=0)


@pytest.fixture
def model(original: tuple[Path, ExportedModel], tmp_path: Path) -> tuple[Path, ExportedModel]:
    """A fresh copy of the original folder (tests change files in it)."""
    source, exported = original
    folder = tmp_path / "models" / source.name
    shutil.copytree(source, folder)
    return folder, exported


def full_scores(graph: bytes, images: np.ndarray) -> np.ndarray:
    x = Preprocessing.for_image(3, SIZE).normalise(images)
    return np.asarray(sigmoid(make_session(graph).run(None, {"image": x})[0]))


def swapping(real: Callable[..., Any], source: Path, target: Path) -> Callable[..., Any]:
    """``real`` (a session factory), after copying ``source`` over ``target``."""

    def swap_then_build(*args: Any, **kwargs: Any) -> Any:
        shutil.copyfile(source, target)
        return real(*args, **kwargs)

    return swap_then_build


def test_verified_bytes_run_after_the_file_is_swapped(model: tuple[Path, ExportedModel], other: Path) -> None:
    folder, exported = model
    original_graph = (folder / "full.onnx").read_bytes()
    verified = verify_manifest(folder, exported.manifest_sha256)
    contents = verified.read_files()
    shutil.copyfile(other / "full.onnx", folder / "full.onnx")
    images = pixels(N)
    ran = full_scores(contents["full.onnx"], images)
    np.testing.assert_array_equal(ran, full_scores(original_graph, images))
    assert not np.allclose(ran, full_scores((folder / "full.onnx").read_bytes(), images))
    with pytest.raises(TamperedModelError, match=r"full\.onnx does not match its recorded SHA-256"):
        verified.read_files()


def test_every_changed_or_missing_file_is_named(model: tuple[Path, ExportedModel]) -> None:
    folder, exported = model
    stage = folder / "stage_1.onnx"
    data = stage.read_bytes()
    stage.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit, same size
    (folder / "stage_2.onnx").unlink()
    verified = verify_manifest(folder, exported.manifest_sha256)
    with pytest.raises(TamperedModelError) as refused:
        verified.read_files()
    assert "stage_1.onnx does not match its recorded SHA-256; stage_2.onnx is missing" in str(refused.value)
    assert verified.read_files(["stage_0.onnx"]).keys() == {"stage_0.onnx"}  # the others are intact
    (folder / "model.json").write_text((folder / "model.json").read_text().replace("0.5", "0.25", 1))
    with pytest.raises(TamperedModelError, match=r"model\.json does not match its recorded SHA-256"):
        verify_manifest(folder, exported.manifest_sha256)


def _files(folder: Path, exported: ExportedModel) -> ModelFiles:
    expected = {name: entry.sha256 for name, entry in exported.manifest.files.items()}
    return ModelFiles(key="k", folder=folder, expected={**expected, "model.json": exported.manifest_sha256})


def test_serving_runs_the_verified_stages_and_refuses_the_swap_next_time(
    model: tuple[Path, ExportedModel], other: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, exported = model
    files = _files(folder, exported)
    images = pixels(N)
    x = Preprocessing.for_image(3, SIZE).normalise(images)
    expected = load_model(files, 1, [CPU]).chain.run(x)

    swap = swapping(make_session, other / "stage_0.onnx", folder / "stage_0.onnx")
    monkeypatch.setattr("app.serving.runtime.make_session", swap)
    cache = ModelCache(size=2, threads=1, providers=[CPU])
    loaded = cache.get(files)
    served = loaded.chain.run(x)
    np.testing.assert_array_equal(served.probability, expected.probability)
    np.testing.assert_array_equal(served.exit_index, expected.exit_index)
    with pytest.raises(RefusedModelError, match=r"stage_0\.onnx does not match its recorded SHA-256"):
        cache.get(files)  # the swap changed the file's signature: reloaded, re-verified, refused


def _register(
    factory: sessionmaker[Session], settings: Settings, folder: Path, exported: ExportedModel, channels: int = 3
) -> tuple[str, str]:
    """An organisation with the model registered and a ready cohort of N test-split images."""
    with transaction(factory) as session:
        organisation_id = ensure_organisation(session, "St Elsewhere").id
        cohort = Cohort(
            organisation_id=organisation_id,
            name="external",
            preset="generic",
            config={},
            status="ready",
            n_items=N,
            image_size=SIZE,
            channels=channels,
            attributes=["sex"],
        )
        session.add(cohort)
        session.flush()
        session.add(
            ModelVersion(
                id=folder.name,
                organisation_id=organisation_id,
                method=exported.manifest.method,
                backbone="small",
                path=folder.name,
                sha256=exported.manifest_sha256,
                files={name: entry.sha256 for name, entry in exported.manifest.files.items()},
                thresholds={"operating": 0.5, "exits": exported.manifest.exit_thresholds},
                config={},
                stage="candidate",
            )
        )
        cohort_id = cohort.id
    cache = cache_dir(settings, cohort_id)
    images = create_image_store(cache, N, SIZE, channels)
    images[:] = pixels(N)[..., :channels]
    images.flush()
    write_items(
        cache,
        size=SIZE,
        channels=channels,
        item_ids=[f"item{i}" for i in range(N)],
        labels=[i % 2 for i in range(N)],
        split=["test"] * N,
        patient_ids=[f"p{i}" for i in range(N)],
        attributes={"sex": ["F" if i % 3 else "M" for i in range(N)]},
    )
    return organisation_id, cohort_id


def _context(
    factory: sessionmaker[Session], settings: Settings, organisation_id: str, config: dict[str, Any]
) -> JobContext:
    with transaction(factory) as session:
        job = state.enqueue(session, organisation_id=organisation_id, kind="evaluate", config=config, max_attempts=1)
        job_id = job.id
    with transaction(factory) as session:
        state.claim_next(session, WORKER)
    return JobContext(
        job_id=job_id,
        worker_id=WORKER,
        kind="evaluate",
        organisation_id=organisation_id,
        cohort_id=config["cohort_id"],
        config=config,
        attempt=1,
        settings=settings,
        session_factory=factory,
    )


def test_the_evaluation_job_runs_the_verified_full_graph(
    original: tuple[Path, ExportedModel],
    other: Path,
    settings: Settings,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, exported = original
    folder = settings.model_dir / source.name
    shutil.copytree(source, folder)
    organisation_id, cohort_id = _register(session_factory, settings, folder, exported)
    config = {"model_version_id": folder.name, "cohort_id": cohort_id, "split": "test"}
    ctx = _context(session_factory, settings, organisation_id, config)
    monkeypatch.setattr(evaluate_job, "make_session", swapping(make_session, other / "full.onnx", folder / "full.onnx"))

    completion = evaluate_job.run_evaluation_job(ctx)
    assert completion.register is not None
    with transaction(session_factory) as session:
        evaluation_id = completion.register(session)["evaluation_id"]
    scores = load_predictions(evaluation_dir(settings, evaluation_id)).exit_scores
    np.testing.assert_allclose(scores, full_scores((source / "full.onnx").read_bytes(), pixels(N)), atol=1e-6)
    assert not np.allclose(scores, full_scores((other / "full.onnx").read_bytes(), pixels(N)), atol=1e-3)


def test_the_evaluation_job_refuses_a_cohort_of_another_shape(
    original: tuple[Path, ExportedModel], settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    source, exported = original
    folder = settings.model_dir / source.name
    shutil.copytree(source, folder)
    organisation_id, cohort_id = _register(session_factory, settings, folder, exported, channels=1)
    config = {"model_version_id": folder.name, "cohort_id": cohort_id, "split": "test"}
    with pytest.raises(
        InputError, match=r"takes 16 px images with 3 channel\(s\); cohort \S+ holds 16 px images with 1"
    ):
        evaluate_job.run_evaluation_job(_context(session_factory, settings, organisation_id, config))


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExportedModel]:
    folder = tmp_path_factory.mktemp("classes") / "mdl_classes"
    return folder, export_tiny(folder, task=Task(kind="multiclass", classes=["a", "b", "c"]), multi_exit=False)


def test_the_evaluation_job_refuses_a_cohort_of_another_task(
    three_classes: tuple[Path, ExportedModel], settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    """A three-class model on a binary cohort: the classes, not only the image shape, must match."""
    source, exported = three_classes
    folder = settings.model_dir / source.name
    shutil.copytree(source, folder)
    organisation_id, cohort_id = _register(session_factory, settings, folder, exported)
    config = {"model_version_id": folder.name, "cohort_id": cohort_id, "split": "test"}
    with pytest.raises(InputError, match=r"predicts a multiclass task \(a, b, c\); cohort \S+ is binary"):
        evaluate_job.run_evaluation_job(_context(session_factory, settings, organisation_id, config))
