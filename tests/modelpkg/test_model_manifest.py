"""model.json: written by the exporter, read back equal, and anything malformed refused by name."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from modelpkg_helpers import export_tiny

from app.modelpkg.errors import ManifestError
from app.modelpkg.folder import read_manifest, verify_manifest, write_manifest
from app.modelpkg.manifest import parse_manifest
from app.training.export import ExportedModel

#: The top-level keys, in file order, as docs/model-format.md lists them.
KEYS = [
    "format_version",
    "version",
    "created_at",
    "method",
    "task",
    "architecture",
    "input",
    "preprocessing",
    "output",
    "exit_costs",
    "exit_macs",
    "operating_threshold",
    "operating_threshold_rule",
    "decision",
    "exit_thresholds",
    "exit_policy",
    "training",
    "graphs",
    "parity",
    "files",
    "versions",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExportedModel]:
    folder = tmp_path_factory.mktemp("manifest") / "mdl_tiny"
    return folder, export_tiny(folder)


def test_the_written_manifest_reads_back_equal(exported: tuple[Path, ExportedModel]) -> None:
    folder, result = exported
    text = (folder / "model.json").read_text()
    assert list(json.loads(text)) == KEYS
    assert read_manifest(folder) == result.manifest == parse_manifest(result.manifest.to_json(), "again")
    verified = verify_manifest(folder, result.manifest_sha256)
    assert verified.manifest == result.manifest and verified.manifest_bytes == text.encode()
    assert set(result.manifest.files) == {"full.onnx", "stage_0.onnx", "stage_1.onnx", "stage_2.onnx", "stage_3.onnx"}
    assert result.manifest.training is None and result.manifest.exit_policy is None  # a seeded, untrained network


def test_writing_returns_the_hash_of_the_bytes_written(exported: tuple[Path, ExportedModel], tmp_path: Path) -> None:
    _, result = exported
    copy = tmp_path / "copy"
    copy.mkdir()
    sha = write_manifest(copy, result.manifest)
    assert sha == result.manifest_sha256  # same manifest, same bytes
    assert [p.name for p in copy.iterdir()] == ["model.json"]


def test_a_failed_write_leaves_the_old_manifest(
    exported: tuple[Path, ExportedModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, result = exported
    (tmp_path / "model.json").write_text("old")

    def fail(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("app.modelpkg.folder.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_manifest(tmp_path, result.manifest)
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]
    assert (tmp_path / "model.json").read_text() == "old"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def mutate(data: dict[str, Any]) -> None:
        for key in parents:
            data = data[int(key)] if isinstance(data, list) else data[key]  # type: ignore[call-overload]
        data[last] = value

    return mutate


def _delete(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing section", _delete("preprocessing"), "preprocessing: Field required"),
    ("missing date", _delete("created_at"), "created_at: Field required"),
    ("missing record", _delete("training"), "training: Field required"),
    ("missing format", _delete("format_version"), "format_version: Field required"),
    ("unknown key", _set("colour", "red"), "colour: Extra inputs are not permitted"),
    ("another format", _set("format_version", 2), "format_version: Input should be 1"),
    ("threshold count", _set("exit_thresholds", [0.9, 0.9, None]), "n_exits is 5 but exit_thresholds has 3"),
    ("final threshold", _set("exit_thresholds", [0.9] * 5), "the final exit's threshold must be null"),
    ("threshold range", _set("exit_thresholds", [1.5, 0.9, 0.9, 0.9, None]), "exit_thresholds.0"),
    ("layout", _set("input.layout", "NHWC"), "input.layout: Input should be 'NCHW'"),
    ("channels", _set("input.channels", 4), "input.channels: Input should be 1 or 3"),
    ("not square", _set("input.width", 20), "input must be square"),
    ("mean length", _set("preprocessing.mean", [0.5]), "color_mode RGB needs 3 mean and std values"),
    ("scale", _set("preprocessing.scale", 1.0), "scale must be 1/255"),
    ("path in file", _set("graphs.stages.0.file", "../stage_0.onnx"), "graphs.stages.0.file: String should match"),
    ("unlisted graph", _set("graphs.full.file", "other.onnx"), "graph files missing from files: other.onnx"),
    ("exits", _set("graphs.stages.1.exits", [2]), "graphs must return exits 0..4 in order"),
    ("bad hash", lambda data: data["files"]["full.onnx"].update(sha256="xyz"), "sha256: String should match pattern"),
    (
        "provenance",
        _set("exit_policy", {"criterion": "min_pfd", "auc_tolerance": 0.01, "grid": [], "candidates": []}),
        "operating_threshold_rule, exit_policy and training come together",
    ),
]


@pytest.mark.parametrize(("mutate", "message"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_manifest_is_refused_naming_the_problem(
    exported: tuple[Path, ExportedModel], mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    _, result = exported
    data = result.manifest.model_dump(mode="json")
    mutate(data)
    with pytest.raises(ManifestError) as refused:
        parse_manifest(json.dumps(data), "mdl_tiny/model.json")
    assert str(refused.value).startswith("mdl_tiny/model.json is not a model manifest this service can use")
    assert message in str(refused.value)


def test_nan_and_non_json_are_refused(exported: tuple[Path, ExportedModel]) -> None:
    _, result = exported
    text = result.manifest.to_json().replace('"operating_threshold": 0.5', '"operating_threshold": NaN')
    with pytest.raises(ManifestError, match="operating_threshold"):
        parse_manifest(text, "m")
    with pytest.raises(ManifestError, match="Invalid JSON"):
        parse_manifest(b"{not json", "m")


def test_a_registered_manifest_that_no_longer_parses_is_refused(tmp_path: Path) -> None:
    """The hash matches (nobody changed the file) but the format is not one this service reads."""
    (tmp_path / "model.json").write_bytes(b'{"format_version": 2}')
    sha = hashlib.sha256(b'{"format_version": 2}').hexdigest()
    with pytest.raises(ManifestError, match="format_version: Input should be 1"):
        verify_manifest(tmp_path, sha)
