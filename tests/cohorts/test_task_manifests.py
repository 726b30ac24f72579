"""Multi-class and multi-label manifests: each preset's labels, the class list, and every bad input named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cohort_helpers import LIMITS, dicom_bytes, listing, png, write_files, write_zip
from task_helpers import ISIC_GT_HEADER, ISIC_META_HEADER, generic_classes, isic_one_hot, parse, refused

from app.cohorts.archive import open_archive
from app.cohorts.config import ISIC_GROUND_TRUTH, ISIC_METADATA, CohortConfig, parse_config
from app.cohorts.manifest import parse_manifest
from app.core.errors import InputError
from app.modelpkg.task import Task

GENERIC = {"image_column": "image", "label_column": "label", "patient_id_column": "patient"}
MULTICLASS = {**GENERIC, "task": "multiclass", "sensitive_attributes": ["sex"]}


def test_generic_multiclass_uses_declared_order_or_sorted_names(tmp_path: Path) -> None:
    manifest, images = generic_classes({"nevus": 4, "melanoma": 4, "bcc": 4})
    declared = parse(tmp_path / "a", manifest, images, **MULTICLASS, classes=["melanoma", "nevus", "bcc"])
    assert declared.task == Task(kind="multiclass", classes=["melanoma", "nevus", "bcc"])
    assert [i.label for i in declared.items] == [1] * 4 + [0] * 4 + [2] * 4
    default = parse(tmp_path / "b", manifest, images, **MULTICLASS)
    assert default.task.classes == ["bcc", "melanoma", "nevus"]
    assert [i.label for i in default.items] == [2] * 4 + [1] * 4 + [0] * 4


def test_a_label_outside_the_declared_classes_names_row_and_value(tmp_path: Path) -> None:
    manifest, images = generic_classes({"nevus": 3, "melanoma": 3, "wart": 1})
    error = refused(tmp_path, manifest, images, **MULTICLASS, classes=["melanoma", "nevus"])
    assert error.errors == [
        {
            "row": 8,
            "column": "label",
            "message": "label 'wart' is not one of the declared classes (melanoma, nevus)",
        }
    ]


def test_one_class_is_refused(tmp_path: Path) -> None:
    manifest, images = generic_classes({"nevus": 6})
    error = refused(tmp_path, manifest, images, **MULTICLASS)
    assert "K = 1" in error.errors[0]["message"] and "nevus" in error.errors[0]["message"]


def test_a_declared_class_without_training_examples_is_refused_by_name(tmp_path: Path) -> None:
    manifest, images = generic_classes({"nevus": 6, "melanoma": 6})
    error = refused(tmp_path, manifest, images, **MULTICLASS, classes=["melanoma", "nevus", "dermatofibroma"])
    assert error.status == 422
    assert error.errors == [
        {
            "field": "min_class_count",
            "class": "dermatofibroma",
            "count": 0,
            "message": "class 'dermatofibroma' has 0 training examples",
        }
    ]


def test_rare_classes_merge_into_other_class_only_when_asked(tmp_path: Path) -> None:
    manifest, images = generic_classes({"nevus": 20, "melanoma": 20, "wart": 2, "scar": 1})
    error = refused(tmp_path / "a", manifest, images, **MULTICLASS, min_class_count=3)
    assert [(e["class"], e["count"]) for e in error.errors] == [("scar", 1), ("wart", 2)]
    assert "other_class" in error.detail
    merged = parse(tmp_path / "b", manifest, images, **MULTICLASS, min_class_count=1, other_class="other")
    assert merged.task.classes == ["melanoma", "nevus", "scar", "wart"], "nothing below 1: nothing merged"
    assert merged.merged == {}
    # a one-patient stratum goes to train, so scar and wart have 1 and 2 training examples: merged
    merged = parse(tmp_path / "c", manifest, images, **MULTICLASS, min_class_count=3, other_class="other")
    assert merged.task.classes == ["melanoma", "nevus", "other"]
    assert merged.merged == {"other": ["scar", "wart"]}
    assert [i.label for i in merged.items[40:]] == [2, 2, 2]
    assert {"merged_classes": ["scar", "wart"], "into": "other"}.items() <= merged.warnings[-1].items()


def test_a_merged_other_class_that_is_still_too_small_is_refused(tmp_path: Path) -> None:
    manifest, images = generic_classes({"nevus": 20, "melanoma": 20, "wart": 1})
    error = refused(tmp_path, manifest, images, **MULTICLASS, min_class_count=5, other_class="other")
    assert [(e["class"], e["count"]) for e in error.errors] == [("other", 1)]


def test_merging_into_the_only_other_class_leaves_one_class(tmp_path: Path) -> None:
    manifest, images = generic_classes({"nevus": 20, "wart": 1})
    error = refused(tmp_path, manifest, images, **MULTICLASS, min_class_count=5, other_class="nevus")
    assert "K = 1" in error.errors[0]["message"]


def test_fitzpatrick_label_fields(tmp_path: Path) -> None:
    header = "md5hash,fitzpatrick_scale,label,nine_partition_label,three_partition_label"
    rows = [
        "a1,1,psoriasis,inflammatory,non-neoplastic",
        "a2,5,melanoma,malignant melanoma,malignant",
        "a3,3,basal cell carcinoma,malignant epidermal,malignant",
        "a4,-1,acne,inflammatory,non-neoplastic",
        "a5,2,nevus,benign dermal,benign",
    ]
    manifest = "\n".join([header, *rows]) + "\n"
    images = [f"a{i}.jpg" for i in range(1, 6)]
    config = {"preset": "fitzpatrick17k", "task": "multiclass", "split": {"mode": "random", "fractions": [1, 0, 0]}}
    three = parse(tmp_path / "3", manifest, images, **config)
    assert three.task.classes == ["benign", "malignant", "non-neoplastic"]
    assert [i.label for i in three.items] == [2, 1, 1, 2, 0]
    nine = parse(tmp_path / "9", manifest, images, **config, label_field="nine_partition_label")
    assert nine.task.classes == ["benign dermal", "inflammatory", "malignant epidermal", "malignant melanoma"]
    assert [i.label for i in nine.items] == [1, 3, 2, 1, 0]
    fine = parse(tmp_path / "f", manifest, images, **config, label_field="label")
    assert fine.task.classes == ["acne", "basal cell carcinoma", "melanoma", "nevus", "psoriasis"]
    assert [i.label for i in fine.items] == [4, 2, 1, 0, 3]
    assert fine.items[1].attributes == {"skin_type": "5", "skin_tone": "dark"}


def test_isic_multiclass_from_one_manifest(tmp_path: Path) -> None:
    header = "image,age_approx,sex,anatom_site_general,lesion_id," + ISIC_GT_HEADER.removeprefix("image,")
    codes = ["MEL", "NV", "BCC", "NV", "MEL", "NV", "AK", "DF"]
    rows = [f"ISIC_{i},50,male,torso,L{i},{isic_one_hot(c)}" for i, c in enumerate(codes)]
    manifest = "\n".join([header, *rows]) + "\n"
    images = [f"ISIC_{i}.jpg" for i in range(len(codes))]
    config = {"preset": "isic2019", "task": "multiclass", "split": {"mode": "random", "fractions": [1, 0, 0]}}
    error = refused(tmp_path / "few", manifest, images, **config)  # three diagnoses have no example
    assert [(e["class"], e["count"]) for e in error.errors] == [("BKL", 0), ("VASC", 0), ("SCC", 0)]
    merged = parse(tmp_path / "m", manifest, images, **config, min_class_count=2, other_class="other")
    assert merged.task.classes == ["MEL", "NV", "other"], "UNK is no class: no row has it"
    assert merged.merged == {"other": ["BCC", "AK", "BKL", "DF", "VASC", "SCC"]}
    assert [i.label for i in merged.items] == [0, 1, 2, 1, 0, 1, 2, 2]
    unk = manifest + f"ISIC_8,50,male,torso,L8,{isic_one_hot('UNK')}\n"
    with_unk = parse(tmp_path / "u", unk, [*images, "ISIC_8.jpg"], **config, min_class_count=2, other_class="other")
    assert with_unk.task.classes == ["MEL", "NV", "other"], "UNK is a class once a row has it (here merged)"
    assert with_unk.merged == {"other": ["BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]}
    two_hot = manifest.replace(isic_one_hot("BCC"), isic_one_hot("BCC").replace("0.0", "1.0", 1))
    error = refused(tmp_path / "bad", two_hot, images, **config)
    assert error.errors == [
        {"row": 4, "column": "MEL..UNK", "message": "row has 2 classes set (MEL, BCC), expected exactly one"}
    ]


def isic_pair(codes: list[str], *, drop_meta: int | None = None, extra_meta: str | None = None) -> dict[str, bytes]:
    """The challenge's two CSVs as shipped, plus the images."""
    ground_truth = [ISIC_GT_HEADER] + [f"ISIC_{i},{isic_one_hot(c)}" for i, c in enumerate(codes)]
    metadata = [ISIC_META_HEADER] + [
        f"ISIC_{i},{40 + i},torso,L{i},{'female' if i % 2 else 'male'}" for i in range(len(codes)) if i != drop_meta
    ]
    if extra_meta:
        metadata.append(extra_meta)
    entries = {f"ISIC_{i}.jpg": png() for i in range(len(codes))}
    entries[ISIC_GROUND_TRUTH] = ("\n".join(ground_truth) + "\n").encode()
    entries[ISIC_METADATA] = ("\n".join(metadata) + "\n").encode()
    return entries


def parse_archive(tmp_path: Path, entries: dict[str, bytes], **config: object):
    tmp_path.mkdir(parents=True, exist_ok=True)
    archive = write_zip(tmp_path / "upload.zip", entries)
    parsed_config = CohortConfig.model_validate({"name": "isic", "preset": "isic2019", **config})
    with open_archive(archive, tmp_path / "files", LIMITS, parsed_config.manifest_pair()) as checked:
        return parse_manifest(
            checked.manifest,
            parsed_config,
            files=checked.files,
            read_images=checked.read,
            companion=checked.companion,
        )


def test_isic_ground_truth_and_metadata_files_are_joined_on_image(tmp_path: Path) -> None:
    codes = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "NV"]
    split = {"mode": "random", "fractions": [1, 0, 0]}
    parsed = parse_archive(tmp_path / "a", isic_pair(codes), task="multiclass", split=split)
    assert parsed.task.classes == codes[:8]
    assert [i.label for i in parsed.items] == [0, 1, 2, 3, 4, 5, 6, 7, 1]
    assert parsed.items[1].attributes == {"sex": "female", "age_group": "40-59", "anatom_site_general": "torso"}
    assert parsed.items[1].patient_id == "L1"
    assert not [w for w in parsed.warnings if "file" in w], "the metadata file is no unlisted image"
    binary = parse_archive(tmp_path / "b", isic_pair(codes), positive_class="BCC")
    assert [i.label for i in binary.items] == [int(c == "BCC") for c in codes]
    named = parse_archive(
        tmp_path / "c", isic_pair(codes), ground_truth_file=ISIC_GROUND_TRUTH, metadata_file=ISIC_METADATA
    )
    assert len(named.items) == len(codes)


def test_isic_rows_in_one_file_only_name_the_image(tmp_path: Path) -> None:
    entries = isic_pair(["MEL", "NV", "BCC"], drop_meta=1, extra_meta="ISIC_9,50,torso,L9,male")
    with pytest.raises(InputError) as info:
        parse_archive(tmp_path, entries)
    assert info.value.errors == [
        {
            "file": ISIC_GROUND_TRUTH,
            "row": 3,
            "column": "image",
            "message": f"image 'ISIC_1' is in {ISIC_GROUND_TRUTH} but not in {ISIC_METADATA}",
        },
        {
            "file": ISIC_METADATA,
            "row": 4,
            "column": "image",
            "message": f"image 'ISIC_9' is in {ISIC_METADATA} but not in {ISIC_GROUND_TRUTH}",
        },
    ]
    assert listing(tmp_path / "files") == []


def test_isic_metadata_problems_name_the_metadata_file_and_row(tmp_path: Path) -> None:
    entries = isic_pair(["MEL", "NV"])
    entries[ISIC_METADATA] = entries[ISIC_METADATA].replace(b"ISIC_1,41", b"ISIC_1,999")
    with pytest.raises(InputError) as info:
        parse_archive(tmp_path, entries)
    assert info.value.errors == [
        {"file": ISIC_METADATA, "row": 3, "column": "age_approx", "message": "age 999 is outside 0-130"}
    ]
    assert listing(tmp_path / "files") == []


def test_named_isic_files_must_be_in_the_archive(tmp_path: Path) -> None:
    entries = isic_pair(["MEL", "NV"])
    with pytest.raises(InputError) as info:
        parse_archive(tmp_path, entries, ground_truth_file="gt.csv", metadata_file=ISIC_METADATA)
    assert info.value.status == 400 and "the archive root has no gt.csv" in info.value.detail


def test_generic_multilabel_findings_and_blank_policy(tmp_path: Path) -> None:
    manifest = "image,edema,effusion,patient\nimg/0.png,1,0,p0\nimg/1.png,,1,p1\nimg/2.png,0,,p2\nimg/3.png,1,1,p3\n"
    images = [f"img/{i}.png" for i in range(4)]
    config = {"image_column": "image", "patient_id_column": "patient", "task": "multilabel"}
    config |= {"finding_columns": ["edema", "effusion"], "split": {"mode": "random", "fractions": [1, 0, 0]}}
    negative = parse(tmp_path / "n", manifest, images, **config)
    assert negative.task == Task(kind="multilabel", classes=["edema", "effusion"])
    assert [i.label for i in negative.items] == [(1, 0), (0, 1), (0, 0), (1, 1)]
    missing = parse(tmp_path / "m", manifest, images, **config, blank_as="missing")
    assert [i.label for i in missing.items] == [(1, 0), (-1, 1), (0, -1), (1, 1)]


def test_a_multilabel_row_with_every_finding_unknown_is_named(tmp_path: Path) -> None:
    manifest = "image,edema,effusion\nimg/0.png,1,0\nimg/1.png,,\nimg/2.png,0,x\n"
    images = [f"img/{i}.png" for i in range(3)]
    config = {"image_column": "image", "task": "multilabel", "finding_columns": ["edema", "effusion"]}
    error = refused(tmp_path, manifest, images, **config, blank_as="missing")
    assert error.errors == [
        {
            "row": 3,
            "column": "edema, effusion",
            "message": "every finding is unknown (blank or uncertain read as missing)",
        },
        {"row": 4, "column": "effusion", "message": "finding value 'x' is not 1, 0 or blank"},
    ]


def test_chexpert_findings_each_with_their_policy(tmp_path: Path) -> None:
    paths = [f"train/patient0000{i}/study1/view1_frontal.jpg" for i in range(5)]
    cells = ["1.0,-1.0,", "0.0,1.0,-1.0", "-1.0,0.0,1.0", "0.0,,0.0", "-1.0,-1.0,"]
    manifest = "Path,Sex,Age,Edema,Atelectasis,Consolidation\n" + "".join(
        f"{p},Female,60,{c}\n" for p, c in zip(paths, cells, strict=True)
    )
    findings = [
        {"column": "Edema"},  # uncertain: missing (U-Ignore for this finding), blank: negative
        {"column": "Atelectasis", "uncertain_as": "positive"},  # U-Ones
        {"column": "Consolidation", "uncertain_as": "exclude", "blank_as": "missing"},  # drops the row
    ]
    config = {"preset": "chexpert", "task": "multilabel", "findings": findings, "min_class_count": 1}
    config |= {"split": {"mode": "random", "fractions": [1, 0, 0]}}
    parsed = parse(tmp_path, manifest, paths, **config)
    assert parsed.task.classes == ["Edema", "Atelectasis", "Consolidation"]
    assert [(i.patient_id, i.label) for i in parsed.items] == [
        ("patient00000", (1, 1, -1)),
        ("patient00002", (-1, 0, 1)),
        ("patient00003", (0, 0, 0)),
        ("patient00004", (-1, 1, -1)),
    ]
    assert parsed.warnings[0]["message"].startswith("1 row(s) dropped by the label policy")


def test_a_finding_without_training_positives_is_refused(tmp_path: Path) -> None:
    manifest = "image,edema,effusion\n" + "".join(f"img/{i}.png,{i % 2},0\n" for i in range(6))
    images = [f"img/{i}.png" for i in range(6)]
    config = {"image_column": "image", "task": "multilabel", "finding_columns": ["edema", "effusion"]}
    error = refused(tmp_path, manifest, images, **config)
    assert error.errors == [
        {
            "field": "min_class_count",
            "finding": "effusion",
            "count": 0,
            "message": "finding 'effusion' has 0 positive training examples",
        }
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({**MULTICLASS, "positive_class": "x"}, "positive_class cannot be set for a multiclass task"),
        ({**GENERIC, "classes": ["a", "b"]}, "classes cannot be set for a binary task"),
        ({**GENERIC, "min_class_count": 3}, "min_class_count cannot be set for a binary task"),
        ({"preset": "fitzpatrick17k", "task": "multilabel"}, "the fitzpatrick17k preset has no multilabel task"),
        ({"preset": "chexpert", "task": "multiclass"}, "the chexpert preset has no multiclass task"),
        ({"preset": "chexpert", "task": "multilabel"}, "a multilabel chexpert cohort needs findings"),
        ({**MULTICLASS, "classes": ["a"]}, "classes lists 1 class(es)"),
        ({**MULTICLASS, "classes": ["a", "a"]}, "a class or finding is listed twice"),
        ({"image_column": "i", "task": "multilabel"}, "a multilabel generic cohort needs finding_columns"),
        ({**GENERIC, "blank_as": "missing"}, "blank_as cannot be set for a binary generic cohort"),
        (
            {"preset": "chexpert", "finding_column": "Edema", "blank_as": "missing"},
            "blank_as must be negative or exclude",
        ),
        (
            {"preset": "chexpert", "task": "multilabel", "findings": [{"column": "Edema"}], "blank_as": "missing"},
            "blank_as cannot be set for a multilabel chexpert cohort",
        ),
        ({"preset": "isic2019", "ground_truth_file": "gt.csv"}, "ground_truth_file and metadata_file are set together"),
        ({"preset": "generic", "label_field": "label", **GENERIC}, "label_field cannot be set with the generic preset"),
    ],
)
def test_config_fields_that_do_not_fit_the_task_are_refused(config: dict, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_config(json.dumps({"name": "c", **config}))
    assert message in json.dumps(info.value.errors), info.value.errors


def test_dicom_multiclass_and_multilabel_labels(tmp_path: Path) -> None:
    pixels = np.zeros((8, 8), dtype=np.uint8)
    files = {f"{i}.dcm": dicom_bytes(pixels, patient_id=f"MRN-{i}") for i in range(4)}
    root = write_files(tmp_path, files)
    (root / "manifest.csv").write_text("file,label,edema,effusion\n0.dcm,a,1,0\n1.dcm,b,0,1\n2.dcm,a,,1\n3.dcm,c,1,0\n")
    split = {"mode": "random", "fractions": [1, 0, 0]}
    classes = CohortConfig(name="d", preset="dicom", task="multiclass", classes=["c", "b", "a"], split=split)
    parsed = parse_manifest(root / "manifest.csv", classes, salt=b"s")
    assert parsed.task.classes == ["c", "b", "a"] and [i.label for i in parsed.items] == [2, 1, 2, 0]
    assert parsed.items[0].attributes == {"sex": "female", "age_group": "60-74"}
    findings = CohortConfig(
        name="d",
        preset="dicom",
        task="multilabel",
        finding_columns=["edema", "effusion"],
        blank_as="missing",
        split=split,
    )
    parsed = parse_manifest(root / "manifest.csv", findings, salt=b"s")
    assert parsed.task.classes == ["edema", "effusion"]
    assert [i.label for i in parsed.items] == [(1, 0), (0, 1), (-1, 1), (1, 0)]
