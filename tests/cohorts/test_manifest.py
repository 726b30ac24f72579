"""Manifest validation: presets, normalised items, and every bad row named in one error."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import numpy as np
import pydicom
import pytest
from cohort_helpers import FITZ_CSV, dicom_bytes, png, write_files

from app.cohorts.config import CohortConfig, DicomTag, parse_config
from app.cohorts.dicom import EXTRA_TAGS, IDENTIFYING_TAGS, tag_hash
from app.cohorts.manifest import ParsedManifest, parse_manifest
from app.core.errors import InputError

GENERIC = {"name": "c", "image_column": "image", "label_column": "label"}


def cohort(tmp_path: Path, manifest: str | bytes, images: list[str], **config: Any) -> ParsedManifest:
    root = write_files(tmp_path / "root", {name: png() for name in images})
    data = manifest.encode() if isinstance(manifest, str) else manifest
    (root / "manifest.csv").write_bytes(data)
    base = GENERIC if config.get("preset", "generic") == "generic" else {"name": "c"}
    return parse_manifest(root / "manifest.csv", CohortConfig.model_validate({**base, **config}))


def rejected(tmp_path: Path, manifest: str | bytes, images: list[str], **config: Any) -> InputError:
    with pytest.raises(InputError) as info:
        cohort(tmp_path, manifest, images, **config)
    return info.value


def test_generic_preset_normalises_items(tmp_path: Path) -> None:
    parsed = cohort(
        tmp_path,
        "image,label,sex,age,pid\nimg/a.png,1,F,39,p1\nimg/b.png,0,M,40,p1\nimg/c.png,true,,75.5,\n",
        ["img/a.png", "img/b.png", "img/c.png"],
        sensitive_attributes=["sex"],
        age_column="age",
        patient_id_column="pid",
    )
    assert parsed.attribute_names == ["age_group", "sex"]
    assert [(i.image, i.label, i.patient_id, i.row) for i in parsed.items] == [
        ("img/a.png", 1, "p1", 2),
        ("img/b.png", 0, "p1", 3),
        ("img/c.png", 1, None, 4),
    ]
    assert [i.attributes for i in parsed.items] == [
        {"age_group": "<40", "sex": "F"},
        {"age_group": "40-59", "sex": "M"},
        {"age_group": ">=75", "sex": None},
    ]
    assert parsed.items[0].split == parsed.items[1].split, "one patient, one split"
    assert parsed.warnings == []


def test_positive_class_maps_text_labels(tmp_path: Path) -> None:
    parsed = cohort(tmp_path, "image,label\na.png,tumour\nb.png,normal\n", ["a.png", "b.png"], positive_class="tumour")
    assert [i.label for i in parsed.items] == [1, 0]


def test_missing_required_column(tmp_path: Path) -> None:
    error = rejected(tmp_path, "image,diagnosis\na.png,1\n", ["a.png"], sensitive_attributes=["sex"])
    assert [e["column"] for e in error.errors] == ["label", "sex"]
    assert "not in the header (image, diagnosis)" in error.errors[0]["message"]


def test_unknown_preset() -> None:
    with pytest.raises(InputError) as info:
        parse_config('{"name": "c", "preset": "mimic"}')
    message = info.value.errors[0]["message"]
    assert "unknown preset 'mimic'" in message
    for preset in ("generic", "fitzpatrick17k", "isic2019", "chexpert", "dicom"):
        assert preset in message


def test_config_refuses_fields_a_preset_fixes() -> None:
    with pytest.raises(InputError) as info:
        parse_config({"name": "c", "preset": "fitzpatrick17k", "label_column": "label"})
    assert "label_column cannot be set with the fitzpatrick17k preset" in str(info.value)


def test_non_binary_labels_are_named(tmp_path: Path) -> None:
    error = rejected(tmp_path, "image,label\na.png,1\nb.png,2\nc.png,maybe\n", ["a.png", "b.png", "c.png"])
    assert [(e["row"], e["column"]) for e in error.errors] == [(3, "label"), (4, "label")]
    assert "'2' is not binary" in error.errors[0]["message"]
    assert "'maybe' is not binary" in error.errors[1]["message"]


def test_duplicate_image_ids_name_both_rows(tmp_path: Path) -> None:
    error = rejected(tmp_path, "image,label\na.png,1\nb.png,0\na.png,0\n", ["a.png", "b.png"])
    assert error.errors == [
        {"row": 4, "column": "image", "message": "duplicate image id 'a.png': also on row 2"},
    ]


def test_images_listed_but_missing(tmp_path: Path) -> None:
    error = rejected(tmp_path, "image,label\na.png,1\ngone.png,0\nalso_gone.png,1\n", ["a.png"])
    assert [e["row"] for e in error.errors] == [3, 4]
    assert "'gone.png' is listed but missing from the archive" in error.errors[0]["message"]


def test_images_present_but_unlisted_are_a_warning(tmp_path: Path) -> None:
    parsed = cohort(tmp_path, "image,label\na.png,1\n", ["a.png", "extra/b.png"])
    assert len(parsed.items) == 1
    assert parsed.warnings == [
        {"file": "extra/b.png", "message": "in the archive but not listed in the manifest (ignored)"}
    ]


def test_non_utf8_manifest(tmp_path: Path) -> None:
    error = rejected(tmp_path, "image,label,site\na.png,1,Zürich\n".encode("latin-1"), ["a.png"])
    assert error.status == 400
    assert error.errors[0]["row"] == 2
    assert "byte 0xfc at offset 26 is not valid UTF-8" in error.errors[0]["message"]


def test_empty_manifest(tmp_path: Path) -> None:
    assert "empty" in rejected(tmp_path, "", ["a.png"]).detail


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    manifest = "image,label,age\na.png,1,abc\nb.png,x,200\nmissing.png,0,30\nc.png,1\n"
    error = rejected(tmp_path, manifest, ["a.png", "b.png", "c.png"], age_column="age")
    assert [(e["row"], e.get("column")) for e in error.errors] == [
        (2, "age"),
        (3, "age"),
        (3, "label"),
        (4, "image"),
        (5, None),
    ]
    assert "age 'abc' is not a number" in error.errors[0]["message"]
    assert "age 200 is outside 0-130" in error.errors[1]["message"]
    assert "has 2 fields, the header has 3" in error.errors[4]["message"]


def test_split_column(tmp_path: Path) -> None:
    parsed = cohort(
        tmp_path,
        "image,label,split\na.png,1,train\nb.png,0,VAL\nc.png,1,test\n",
        ["a.png", "b.png", "c.png"],
        split={"mode": "column"},
    )
    assert [i.split for i in parsed.items] == ["train", "val", "test"]


def test_bad_split_values(tmp_path: Path) -> None:
    error = rejected(
        tmp_path, "image,label,split\na.png,1,train\nb.png,0,holdout\n", ["a.png", "b.png"], split={"mode": "column"}
    )
    assert error.errors == [{"row": 3, "column": "split", "message": "split 'holdout' is not one of train, val, test"}]


def test_reference_without_extension_and_in_a_subfolder(tmp_path: Path) -> None:
    parsed = cohort(tmp_path, "image,label\nimages\\a.png,1\nb,0\n", ["images/a.png", "images/b.jpg"])
    assert [i.image for i in parsed.items] == ["images/a.png", "images/b.jpg"]


def fitzpatrick_rows(n: int) -> list[str]:
    with open(FITZ_CSV, encoding="utf-8") as f:
        return [next(f).rstrip("\n") for _ in range(n + 1)]


def test_fitzpatrick17k_accepts_the_real_header_and_rows(tmp_path: Path) -> None:
    lines = fitzpatrick_rows(40)
    hashes = [line.split(",")[0] for line in lines[1:]]
    images = [f"{h}.{'jpg' if i % 2 else 'png'}" for i, h in enumerate(hashes)]
    parsed = cohort(tmp_path, "\n".join(lines) + "\n", images, preset="fitzpatrick17k")
    assert parsed.attribute_names == ["skin_type", "skin_tone"]
    assert [i.image for i in parsed.items] == images
    by_id = {i.item_id: i for i in parsed.items}
    for line in lines[1:]:
        md5, scale, _, _, _, three, _ = line.split(",")
        item = by_id[md5]
        assert item.label == int(three == "malignant")
        assert item.attributes["skin_type"] == (None if scale == "-1" else scale)


def test_fitzpatrick_skin_tone_and_missing_type(tmp_path: Path) -> None:
    header = "md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,three_partition_label,qc"
    rows = [f"h{t},{t},{t},melanoma,malignant melanoma,malignant," for t in (1, 3, 4, 6, -1)]
    parsed = cohort(
        tmp_path,
        "\n".join([header, *rows]) + "\n",
        [f"h{t}.png" for t in (1, 3, 4, 6, -1)],
        preset="fitzpatrick17k",
    )
    assert [(i.attributes["skin_type"], i.attributes["skin_tone"]) for i in parsed.items] == [
        ("1", "light"),
        ("3", "light"),
        ("4", "dark"),
        ("6", "dark"),
        (None, None),
    ]


def test_fitzpatrick_patient_id_column_groups_the_split(tmp_path: Path) -> None:
    header = "md5hash,fitzpatrick_scale,three_partition_label,patient"
    rows = [f"h{i},{1 + i % 6},{'malignant' if i % 2 else 'benign'},p{i // 4}" for i in range(80)]
    parsed = cohort(
        tmp_path,
        "\n".join([header, *rows]) + "\n",
        [f"h{i}.png" for i in range(80)],
        preset="fitzpatrick17k",
        patient_id_column="patient",
        split={"mode": "random", "seed": 3, "stratify_by": []},
    )
    assert [i.patient_id for i in parsed.items] == [f"p{i // 4}" for i in range(80)]
    splits_of: dict[str, set[str]] = {}
    for item in parsed.items:
        splits_of.setdefault(item.patient_id or "", set()).add(item.split)
    assert all(len(s) == 1 for s in splits_of.values()), "one patient's images stay in one split"
    assert {s for ss in splits_of.values() for s in ss} == {"train", "val", "test"}
    missing = rejected(
        tmp_path / "other",
        f"{header.replace(',patient', '')}\nh1,2,benign\n",
        ["h1.png"],
        preset="fitzpatrick17k",
        patient_id_column="patient",
    )
    assert missing.errors[0]["column"] == "patient"


def test_fitzpatrick_bad_cells(tmp_path: Path) -> None:
    header = "md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,three_partition_label,qc"
    error = rejected(
        tmp_path,
        f"{header}\nh1,7,7,x,y,malignant,\nh2,2,2,x,y,cancerous,\n",
        ["h1.jpg", "h2.jpg"],
        preset="fitzpatrick17k",
    )
    assert [(e["row"], e["column"]) for e in error.errors] == [(2, "fitzpatrick_scale"), (3, "three_partition_label")]


def test_isic2019_preset(tmp_path: Path) -> None:
    header = "image,age_approx,sex,anatom_site_general,lesion_id,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK"
    rows = [
        "ISIC_1,55.0,male,torso,L1,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
        "ISIC_2,,female,,L1,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0",
        "ISIC_3,80,female,head/neck,,0.0,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0",
    ]
    manifest = "\n".join([header, *rows]) + "\n"
    images = ["ISIC_1.jpg", "ISIC_2.jpg", "ISIC_3.jpg"]
    parsed = cohort(tmp_path, manifest, images, preset="isic2019")
    assert [i.label for i in parsed.items] == [1, 0, 0]
    assert [i.patient_id for i in parsed.items] == ["L1", "L1", None]
    assert parsed.items[0].attributes == {"sex": "male", "age_group": "40-59", "anatom_site_general": "torso"}
    assert parsed.items[1].attributes["age_group"] is None
    bcc = cohort(tmp_path / "bcc", manifest, images, preset="isic2019", positive_class="BCC")
    assert [i.label for i in bcc.items] == [0, 0, 1]


def test_chexpert_uncertain_and_blank_policies(tmp_path: Path) -> None:
    paths = [f"train/patient0000{i}/study1/view1_frontal.jpg" for i in range(4)]
    manifest = "Path,Sex,Age,Edema\n" + "".join(
        f"{p},{s},{a},{v}\n"
        for p, s, a, v in zip(
            paths, ["Male", "Female", "Unknown", "Female"], [50, 70, 30, 0], ["1.0", "0.0", "-1.0", ""], strict=True
        )
    )
    parsed = cohort(tmp_path, manifest, paths, preset="chexpert", finding_column="Edema")
    assert [(i.label, i.patient_id) for i in parsed.items] == [
        (1, "patient00000"),
        (0, "patient00001"),
        (0, "patient00003"),
    ]
    assert parsed.items[0].attributes == {"sex": "male", "age_group": "40-59"}
    assert parsed.warnings[0]["message"].startswith("1 row(s) dropped by the label policy")
    ones = cohort(
        tmp_path / "u1",
        manifest,
        paths,
        preset="chexpert",
        finding_column="Edema",
        uncertain_as="positive",
        blank_as="exclude",
    )
    assert [i.label for i in ones.items] == [1, 0, 1]


def test_dicom_preset_reads_demographics_from_tags(tmp_path: Path) -> None:
    pixels = np.zeros((8, 8), dtype=np.uint8)
    root = write_files(
        tmp_path,
        {
            "a.dcm": dicom_bytes(pixels, sex="F", age="063Y", patient_id="MRN-1"),
            "b.dcm": dicom_bytes(pixels, sex="M", age="018M", patient_id="MRN-1"),
            "c.dcm": dicom_bytes(pixels, sex="", age="", patient_id=""),
        },
    )
    (root / "manifest.csv").write_text("file,label\na.dcm,1\nb.dcm,0\nc.dcm,0\n")
    config = CohortConfig(name="c", preset="dicom")
    parsed = parse_manifest(root / "manifest.csv", config, salt=b"cohort-1")
    assert [i.attributes for i in parsed.items] == [
        {"sex": "female", "age_group": "60-74"},
        {"sex": "male", "age_group": "<40"},
        {"sex": None, "age_group": None},
    ]
    a, b, c = (i.patient_id for i in parsed.items)
    assert a == b and c is None and len(a) == 16 and "MRN" not in a
    again = parse_manifest(root / "manifest.csv", config, salt=b"cohort-2")
    assert again.items[0].patient_id != a, "the hash is salted per cohort"


def test_dicom_preset_names_bad_files_and_tags(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Invalid value for VR AS"):
        bad_age = dicom_bytes(np.zeros((8, 8), dtype=np.uint8), age="63 years")
    root = write_files(tmp_path, {"a.dcm": bad_age, "b.dcm": png()})
    (root / "manifest.csv").write_text("file,label\na.dcm,1\nb.dcm,0\n")
    with pytest.raises(InputError) as info:
        parse_manifest(root / "manifest.csv", CohortConfig(name="c", preset="dicom"))
    assert [e["row"] for e in info.value.errors] == [2, 3]
    assert "PatientAge '63 years'" in info.value.errors[0]["message"]
    assert "not a readable DICOM file" in info.value.errors[1]["message"]


def test_config_names_that_do_not_fit_the_preset(tmp_path: Path) -> None:
    error = rejected(
        tmp_path,
        "image,label,sex\na.png,1,F\n",
        ["a.png"],
        sensitive_attributes=["sex"],
        split={"mode": "random", "stratify_by": ["ethnicity"]},
    )
    assert error.errors == [{"field": "split.stratify_by", "message": "ethnicity not among the attributes (sex)"}]


def test_config_that_is_not_json() -> None:
    with pytest.raises(InputError) as info:
        parse_config("{name: c}")
    assert info.value.detail == "config is not valid JSON"


def test_dicom_tags_read_as_attributes_identifying_ones_hashed(tmp_path: Path) -> None:
    assert set(get_args(DicomTag)) == set(EXTRA_TAGS) and set(EXTRA_TAGS) >= IDENTIFYING_TAGS
    pixels = np.zeros((8, 8), dtype=np.uint8)
    root = write_files(tmp_path, {"a.dcm": dicom_bytes(pixels), "b.dcm": dicom_bytes(pixels)})
    (root / "manifest.csv").write_text("file,label\na.dcm,1\nb.dcm,0\n")
    ds = pydicom.dcmread(root / "a.dcm")
    ds.StationName, ds.Manufacturer, ds.EthnicGroup = "ROOM-7", "ACME", "Maori"
    ds.save_as(root / "a.dcm", enforce_file_format=True)
    config = CohortConfig(name="c", preset="dicom", dicom_tags=["StationName", "Manufacturer", "EthnicGroup"])
    parsed = parse_manifest(root / "manifest.csv", config, salt=b"cohort-1")
    assert parsed.attribute_names == ["sex", "age_group", "StationName", "Manufacturer", "EthnicGroup"]
    a, b = (item.attributes for item in parsed.items)
    assert a["StationName"] == tag_hash("StationName", "ROOM-7", b"cohort-1") != "ROOM-7"
    assert (a["Manufacturer"], a["EthnicGroup"]) == ("ACME", "Maori")
    assert (b["StationName"], b["Manufacturer"], b["EthnicGroup"]) == (None, None, None), "absent tags are missing"
