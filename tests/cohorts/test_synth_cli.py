"""``fairaudit synth``: the task options reach the generators, and misplaced options are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synth_helpers import manifest_rows

from app.cli import main
from app.cohorts.synth.cxr import write_cxr_archive
from app.cohorts.synth.derm import write_derm_archive


def synth(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    code = main(["synth", *argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def printed_config(line: str) -> dict[str, object]:
    prefix = "cohort config: "
    assert line.startswith(prefix)
    loaded: dict[str, object] = json.loads(line.removeprefix(prefix))
    return loaded


def test_synth_derm_multiclass_writes_the_archive_and_prints_its_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "derm.zip"
    args = ["derm", "--task", "multiclass", "--partition", "3", "--n", "30", "--image-size", "32", "--seed", "4"]
    code, lines, _ = synth([*args, "--out", str(out)], capsys)
    assert code == 0 and lines[0] == str(out)
    assert printed_config(lines[1]) == {
        "preset": "fitzpatrick17k",
        "task": "multiclass",
        "label_field": "three_partition_label",
    }
    direct = write_derm_archive(tmp_path / "direct.zip", n=30, seed=4, image_size=32, task="multiclass")
    assert out.read_bytes() == direct.read_bytes()
    code, lines, _ = synth(["derm", "--task", "multiclass", "--n", "20", "--out", str(tmp_path / "nine.zip")], capsys)
    assert code == 0 and printed_config(lines[1])["label_field"] == "nine_partition_label"


def test_synth_cxr_findings_writes_one_column_per_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cxr.zip"
    code, lines, _ = synth(["cxr", "--findings", "4", "--n", "12", "--image-size", "32", "--out", str(out)], capsys)
    assert code == 0 and lines[0] == str(out)
    columns = ["effusion", "nodule", "cardiomegaly", "opacity"]
    assert printed_config(lines[1]) == {"preset": "dicom", "task": "multilabel", "finding_columns": columns}
    rows = manifest_rows(out)
    assert len(rows) == 12 and list(rows[0]) == ["file", "label", *columns]


@pytest.mark.parametrize("kind", ["derm", "cxr"])
def test_synth_without_task_options_writes_the_binary_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    out = tmp_path / "cli.zip"
    code, lines, _ = synth([kind, "--n", "15", "--image-size", "32", "--seed", "2", "--out", str(out)], capsys)
    assert code == 0 and lines == [str(out)]
    write = write_derm_archive if kind == "derm" else write_cxr_archive
    assert out.read_bytes() == write(tmp_path / "direct.zip", n=15, seed=2, image_size=32).read_bytes()


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["cxr", "--task", "multiclass"], "--task multiclass"),
        (["derm", "--findings", "3"], "--findings"),
        (["derm", "--partition", "3"], "--partition"),
    ],
)
def test_options_of_another_kind_or_task_are_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], option: str
) -> None:
    out = tmp_path / "x.zip"
    code, lines, err = synth([*argv, "--n", "5", "--out", str(out)], capsys)
    assert code == 2 and lines == []
    assert f"error: {option} does not apply" in err
    assert not out.exists()


def test_a_finding_count_outside_1_to_8_is_an_argument_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["synth", "cxr", "--findings", "9", "--out", str(tmp_path / "x.zip")])
    assert exited.value.code == 2
    assert "--findings" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()
