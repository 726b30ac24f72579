"""The multi-class synthetic dermatology cohort: nine-partition appearances with the skin-type bias."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
from synth_helpers import ingest, manifest_rows, png_images

from app.cohorts.config import CohortConfig
from app.cohorts.synth.derm import (
    CONDITIONS,
    JOINT_COLUMNS,
    JOINT_COUNTS,
    cohort_config,
    load_joint_counts,
    write_derm_archive,
)

PARTITION = {  # nine-partition class -> three-partition class, as in Fitzpatrick 17k
    "benign dermal": "benign",
    "benign epidermal": "benign",
    "benign melanocyte": "benign",
    "malignant cutaneous lymphoma": "malignant",
    "malignant dermal": "malignant",
    "malignant epidermal": "malignant",
    "malignant melanoma": "malignant",
    "genodermatoses": "non-neoplastic",
    "inflammatory": "non-neoplastic",
}


def balanced_table(path: Path) -> Path:
    """A joint-count table with every nine-partition class equally often on every skin type."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*JOINT_COLUMNS, "count"])
        for condition, partition in PARTITION.items():
            writer.writerows([skin, partition, condition, condition, 1] for skin in range(1, 7))
    return path


def block_features(images: np.ndarray) -> np.ndarray:
    """Each image's deviation from its own median colour, averaged over 4×4 blocks (noise mostly cancels,
    the skin colour is removed, the lesion remains): (n, blocks, 3)."""
    n, side = images.shape[0], images.shape[1]
    centred = images - np.median(images, axis=(1, 2), keepdims=True)
    return centred.reshape(n, side // 4, 4, side // 4, 4, 3).mean(axis=(2, 4)).reshape(n, -1, 3)


def test_every_shipped_nine_partition_class_has_an_appearance() -> None:
    shipped = {(key[2], key[1]) for key in load_joint_counts(JOINT_COUNTS)}
    assert shipped == set(PARTITION.items())
    assert set(CONDITIONS) == set(PARTITION)


def test_multiclass_rows_are_the_binary_rows_with_other_images(tmp_path: Path) -> None:
    binary = write_derm_archive(tmp_path / "b.zip", n=40, seed=5, image_size=32, fmt="png")
    first = write_derm_archive(tmp_path / "m1.zip", n=40, seed=5, image_size=32, fmt="png", task="multiclass")
    again = write_derm_archive(tmp_path / "m2.zip", n=40, seed=5, image_size=32, fmt="png", task="multiclass")
    other = write_derm_archive(tmp_path / "m3.zip", n=40, seed=6, image_size=32, fmt="png", task="multiclass")
    assert first.read_bytes() == again.read_bytes()
    assert other.read_bytes() != first.read_bytes()
    rows = manifest_rows(first)
    assert rows == manifest_rows(binary), "the task changes the images, never the rows"
    assert not np.array_equal(png_images(first, rows, "md5hash"), png_images(binary, rows, "md5hash"))


def test_multiclass_archive_loads_with_both_partitions_present(tmp_path: Path) -> None:
    archive = write_derm_archive(tmp_path / "derm.zip", n=80, seed=2, image_size=32, task="multiclass")
    manifest, _ = ingest(archive, tmp_path, CohortConfig(name="d", preset="fitzpatrick17k", image_size=16))
    assert len(manifest.items) == 80 and manifest.warnings == []
    rows = manifest_rows(archive)
    assert all(PARTITION[r["nine_partition_label"]] == r["three_partition_label"] for r in rows)
    assert cohort_config(3) == {
        "preset": "fitzpatrick17k",
        "task": "multiclass",
        "label_field": "three_partition_label",
    }
    assert cohort_config(9)["label_field"] == "nine_partition_label"


def test_class_frequencies_follow_the_real_table(tmp_path: Path) -> None:
    n = 400
    rows = manifest_rows(write_derm_archive(tmp_path / "d.zip", n=n, seed=0, image_size=16, task="multiclass"))
    counts = load_joint_counts(JOINT_COUNTS)
    total = sum(counts.values())
    expected = Counter[str]()
    for key, count in counts.items():
        expected[key[2]] += count
    observed = Counter(r["nine_partition_label"] for r in rows)
    for condition, count in expected.items():
        p = count / total
        assert abs(observed[condition] / n - p) < 4 * np.sqrt(p * (1 - p) / n) + 1 / n, condition
    assert observed["inflammatory"] > n / 2, "the real imbalance: two thirds inflammatory"


def test_lesion_contrast_is_lower_on_skin_types_5_and_6_for_every_class(tmp_path: Path) -> None:
    table = balanced_table(tmp_path / "balanced.csv")
    archive = write_derm_archive(
        tmp_path / "d.zip", n=432, seed=0, image_size=32, fmt="png", table=table, task="multiclass"
    )
    rows = manifest_rows(archive)
    contrast = np.abs(block_features(png_images(archive, rows, "md5hash"))).sum(axis=2).mean(axis=1)
    condition = np.array([r["nine_partition_label"] for r in rows])
    dark = np.isin([r["fitzpatrick_scale"] for r in rows], ["5", "6"])
    for name in CONDITIONS:
        light_mean = contrast[(condition == name) & ~dark].mean()
        dark_mean = contrast[(condition == name) & dark].mean()
        assert dark_mean < 0.65 * light_mean, f"{name}: {dark_mean:.1f} vs {light_mean:.1f}"


def test_nine_and_three_classes_are_learnable_and_worse_on_dark_skin(tmp_path: Path) -> None:
    """Nearest nine-partition class mean of the lesion features, fitted on half the light-skin images:
    far better than chance for the nine classes and for the three-partition classes they form, and
    worse on skin types 5–6."""
    table = balanced_table(tmp_path / "balanced.csv")
    archive = write_derm_archive(
        tmp_path / "d.zip", n=540, seed=1, image_size=32, fmt="png", table=table, task="multiclass"
    )
    rows = manifest_rows(archive)
    features = block_features(png_images(archive, rows, "md5hash")).reshape(len(rows), -1)
    dark = np.isin([r["fitzpatrick_scale"] for r in rows], ["5", "6"])
    train = np.arange(len(rows)) % 2 == 0
    nine = np.array([r["nine_partition_label"] for r in rows])
    names = np.unique(nine)
    means = np.stack([features[train & ~dark & (nine == c)].mean(axis=0) for c in names])
    predicted = names[((features[:, None, :] - means[None]) ** 2).sum(axis=2).argmin(axis=1)]
    three = np.array([r["three_partition_label"] for r in rows])
    for correct, chance in ((predicted == nine, 1 / 9), (np.array([PARTITION[c] for c in predicted]) == three, 1 / 3)):
        light_accuracy, dark_accuracy = correct[~train & ~dark].mean(), correct[~train & dark].mean()
        assert light_accuracy > chance + 0.3, (chance, light_accuracy)
        assert dark_accuracy < light_accuracy - 0.15, (chance, dark_accuracy, light_accuracy)
