"""Synthetic dermatology cohort in the exact Fitzpatrick 17k manifest layout, with a planted bias.

Rows are sampled (with replacement, seeded) from the real joint distribution of Fitzpatrick skin
type × ``three_partition_label`` × ``nine_partition_label`` × ``label`` of the Fitzpatrick 17k table,
so the cohort has the real dataset's imbalances (few malignant images on skin types 5–6, ~3 % unknown
skin type). At least one row has ``fitzpatrick_scale`` −1 whenever ``n >= 20``.

Each image depends on its row:

- background: a skin colour per Fitzpatrick type (1 lightest … 6 darkest) with uneven lighting and
  sensor noise (σ = 9 grey levels); a row with unknown type (−1) still shows a skin colour, drawn at
  random;
- lesion by ``three_partition_label`` (the shape distributions overlap, so the task is not trivial):
  ``benign`` — a brown blob, mostly smooth and even (border irregularity 0–0.08, a darker inner
  patch 15 % of the time); ``malignant`` — a slightly larger brown blob with an irregular border
  (irregularity 0.06–0.22) and usually (70 %) a darker inner patch (variegation);
  ``non-neoplastic`` — a few diffuse reddish patches.

Multi-class task (``task="multiclass"``, ``fairaudit synth derm --task multiclass``): the same rows,
but each lesion follows the row's ``nine_partition_label`` (``CONDITIONS``), nine distinguishable but
overlapping appearances:

- benign (one smooth blob, irregularity ≤ 0.1): ``benign melanocyte`` small, round, dark brown;
  ``benign dermal`` pinkish brown, usually with a paler centre; ``benign epidermal`` large, light
  brown, elongated (aspect 1.3–1.8);
- malignant (irregular borders, 0.06–0.24): ``malignant melanoma`` large, dark brown, usually
  variegated; ``malignant epidermal`` pink-red with a pale (ulcerated) centre; ``malignant dermal``
  purplish and elongated; ``malignant cutaneous lymphoma`` two or three irregular red plaques;
- non-neoplastic (several patches): ``inflammatory`` two to four diffuse red patches (like the
  binary task's non-neoplastic ones); ``genodermatoses`` six to twelve small brown spots.

The three-partition classes are unions of these (smooth single blob / irregular / several patches),
so a three-class model is learnable from the same archive; classes within a partition differ by
size, shape and colour with overlapping ranges. Class frequencies are the real ones (two thirds
``inflammatory``, under 1 % ``malignant dermal``). The cohort config ``cohort_config(3 | 9)`` loads
the archive with ``label_field`` ``three_partition_label`` or ``nine_partition_label``.

Planted bias (documented, learnable): lesion contrast is lower on darker skin. A lesion darkens the
skin by ``LESION_DELTA`` grey levels of luminance — 60 on types 1–4, 20 on types 5–6 — under the same
noise, so border irregularity and variegation, the malignancy signals, are much harder to see on
types 5–6: a classifier's sensitivity and AUC there should drop. An audit of a model trained on this
cohort should find the gap by ``skin_type`` and ``skin_tone`` (dark = 4–6, diluted by type 4). In
the multi-class task every colour (darkening and redness, in units of ``LESION_DELTA``) scales the
same way, so each class's lesion is about a third as contrasted on types 5–6 and per-class
sensitivity (TPR) should be lower on dark skin for every class.

Data attribution: joint counts derived from the Fitzpatrick 17k metadata (Groh et al., "Evaluating
deep neural networks trained on clinical images in dermatology with the Fitzpatrick 17k dataset",
CVPR Workshops 2021; github.com/mattgroh/fitzpatrick17k), licensed CC BY-NC-SA 3.0. The derived
table ``fitzpatrick17k_joint_counts.csv`` is shared under the same licence.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from app.cohorts.synth.archive import ArchiveWriter

JOINT_COUNTS = Path(__file__).with_name("fitzpatrick17k_joint_counts.csv")
MANIFEST_COLUMNS = [
    "md5hash",
    "fitzpatrick_scale",
    "fitzpatrick_centaur",
    "label",
    "nine_partition_label",
    "three_partition_label",
    "qc",
]
JOINT_COLUMNS = ["fitzpatrick_scale", "three_partition_label", "nine_partition_label", "label"]
SKIN_RGB = {
    1: (246, 222, 204),
    2: (234, 192, 163),
    3: (208, 158, 120),
    4: (168, 118, 84),
    5: (118, 78, 52),
    6: (74, 49, 34),
}
LESION_DELTA = {1: 60.0, 2: 60.0, 3: 60.0, 4: 60.0, 5: 20.0, 6: 20.0}  # the planted bias
REDNESS = np.array([0.5, -0.6, -0.6], dtype=np.float32)  # colour shift of non-neoplastic patches
NOISE_STD = 9.0


class Blob(NamedTuple):
    """One star-shaped blob of a mask; lengths are fractions of the image side."""

    centre: np.ndarray
    radius: float
    irregularity: float
    aspect: float = 1.0
    angle: float = 0.0


@dataclass(frozen=True)
class ConditionStyle:
    """How one nine-partition class looks: ranges are drawn uniformly per image; colours are
    ``(darkening, redness)`` in units of the skin type's ``LESION_DELTA`` (see ``_tint``)."""

    blobs: tuple[int, int]
    radius: tuple[float, float]
    irregularity: tuple[float, float]
    colour: tuple[float, float]
    spread: float = 0.12
    aspect: tuple[float, float] = (1.0, 1.0)
    blur: float = 0.0
    inner_chance: float = 0.0
    inner_colour: tuple[float, float] = (0.0, 0.0)


# The nine-partition appearances (multi-class task). Benign classes are one smooth blob, malignant ones
# irregular (or, for lymphoma, irregular plaques), non-neoplastic ones several diffuse patches, so the
# three-partition classes stay learnable as unions; within a partition classes differ in size, shape,
# colour and centre, with overlapping ranges.
CONDITIONS: dict[str, ConditionStyle] = {
    "benign melanocyte": ConditionStyle(
        blobs=(1, 1),
        radius=(0.1, 0.15),
        irregularity=(0.0, 0.06),
        colour=(1.1, 0.0),
        inner_chance=0.1,
        inner_colour=(1.6, 0.0),
    ),
    "benign dermal": ConditionStyle(
        blobs=(1, 1),
        radius=(0.14, 0.2),
        irregularity=(0.0, 0.08),
        colour=(0.5, 0.6),
        inner_chance=0.6,
        inner_colour=(-0.3, 0.3),
    ),
    "benign epidermal": ConditionStyle(
        blobs=(1, 1),
        radius=(0.16, 0.22),
        irregularity=(0.02, 0.1),
        colour=(0.8, 0.1),
        aspect=(1.3, 1.8),
        inner_chance=0.3,
        inner_colour=(1.4, 0.0),
    ),
    "malignant melanoma": ConditionStyle(
        blobs=(1, 1),
        radius=(0.18, 0.24),
        irregularity=(0.1, 0.24),
        colour=(1.1, 0.0),
        inner_chance=0.8,
        inner_colour=(1.8, 0.0),
    ),
    "malignant epidermal": ConditionStyle(
        blobs=(1, 1),
        radius=(0.15, 0.21),
        irregularity=(0.06, 0.18),
        colour=(0.4, 0.8),
        inner_chance=0.6,
        inner_colour=(-0.4, 0.3),
    ),
    "malignant dermal": ConditionStyle(
        blobs=(1, 1),
        radius=(0.15, 0.21),
        irregularity=(0.06, 0.2),
        colour=(0.7, 0.7),
        aspect=(1.2, 1.6),
        inner_chance=0.3,
        inner_colour=(1.3, 0.5),
    ),
    "malignant cutaneous lymphoma": ConditionStyle(
        blobs=(2, 3), radius=(0.08, 0.13), irregularity=(0.08, 0.2), colour=(0.3, 1.0), spread=0.22, blur=0.01
    ),
    "inflammatory": ConditionStyle(
        blobs=(2, 4), radius=(0.06, 0.1), irregularity=(0.0, 0.04), colour=(0.0, 1.0), spread=0.25, blur=0.04
    ),
    "genodermatoses": ConditionStyle(
        blobs=(6, 12), radius=(0.025, 0.045), irregularity=(0.0, 0.05), colour=(0.9, 0.2), spread=0.3, blur=0.01
    ),
}
WORK_SIZE = 128
LIGHTINGS = 8


def cohort_config(partition: Literal[3, 9]) -> dict[str, Any]:
    """The multi-class cohort config that loads a ``task="multiclass"`` archive with 3 or 9 classes."""
    field = {3: "three_partition_label", 9: "nine_partition_label"}[partition]
    return {"preset": "fitzpatrick17k", "task": "multiclass", "label_field": field}


def derive_joint_counts(metadata_csv: Path, out: Path) -> None:
    """Write the joint-count table from the full metadata CSV (how the shipped table was made)."""
    counts = load_joint_counts(metadata_csv)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*JOINT_COLUMNS, "count"])
        for key, count in sorted(counts.items()):
            writer.writerow([*key, count])


def load_joint_counts(path: Path) -> Counter[tuple[str, ...]]:
    """Joint counts from either the full metadata CSV (one row per image) or the derived table."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    counts: Counter[tuple[str, ...]] = Counter()
    for row in rows:
        counts[tuple(row[c] for c in JOINT_COLUMNS)] += int(row.get("count") or 1)
    return counts


def write_derm_archive(
    out: Path,
    n: int,
    seed: int,
    image_size: int = 128,
    fmt: Literal["jpg", "png"] = "jpg",
    table: Path = JOINT_COUNTS,
    task: Literal["binary", "multiclass"] = "binary",
) -> Path:
    """Write an upload-ready zip: ``manifest.csv`` (fitzpatrick17k layout) and one image per row.

    ``task`` chooses what the image shows: the three-partition lesion (``binary``, the original
    images) or the nine-partition condition (``multiclass``); the rows (manifest) are the same."""
    rng = np.random.default_rng(seed)
    counts = load_joint_counts(table)
    keys = list(counts)
    weights = np.array([counts[k] for k in keys], dtype=float)
    picks = rng.choice(len(keys), size=n, p=weights / weights.sum())
    rows = [dict(zip(JOINT_COLUMNS, keys[i], strict=True)) for i in picks]
    if n >= 20 and all(r["fitzpatrick_scale"] != "-1" for r in rows):
        rows[0]["fitzpatrick_scale"] = "-1"
    painter = _Painter(image_size, rng)
    manifest = io.StringIO()
    writer = csv.DictWriter(manifest, MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    with ArchiveWriter(out) as archive:
        for i, row in enumerate(rows):
            md5 = hashlib.md5(f"synth-derm-{seed}-{i}".encode()).hexdigest()
            scale = int(row["fitzpatrick_scale"])
            skin_type = scale if scale > 0 else int(rng.integers(1, 7))
            if task == "binary":
                image = painter.paint(skin_type, row["three_partition_label"])
            else:
                image = painter.paint_condition(skin_type, row["nine_partition_label"])
            archive.add(f"{md5}.{fmt}", _encode(image, fmt))
            writer.writerow({**row, "md5hash": md5, "fitzpatrick_centaur": row["fitzpatrick_scale"], "qc": ""})
        archive.add("manifest.csv", manifest.getvalue().encode("utf-8"), compress=True)
    return out


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpg":
        image.save(buf, "JPEG", quality=90)
    else:
        image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


class _Painter:
    """Draws skin images at most ``WORK_SIZE`` wide (shapes are smooth), upscales, then adds noise at
    full size. Lit skin backgrounds and the noise field are made once and reused (crops at random
    offsets), which keeps 2,000 images to about a second."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.work = min(size, WORK_SIZE)
        self.rng = rng
        noise = np.clip(128 + rng.normal(0.0, NOISE_STD, (2 * size, 2 * size, 1)), 0, 255)
        self.noise = Image.fromarray(np.repeat(noise, 3, axis=2).astype(np.uint8))
        yy, xx = np.mgrid[0 : self.work, 0 : self.work].astype(np.float32) / self.work - 0.5
        tilts = rng.uniform(-0.12, 0.12, (LIGHTINGS, 2)).astype(np.float32)
        self.backgrounds = {
            t: [
                Image.fromarray(
                    np.clip(np.array(rgb, np.float32) * (1 + ty * yy + tx * xx)[..., None], 0, 255).astype(np.uint8)
                )
                for ty, tx in tilts
            ]
            for t, rgb in SKIN_RGB.items()
        }

    def paint(self, skin_type: int, kind: str) -> Image.Image:
        """The binary task's image: the lesion follows the ``three_partition_label`` (``kind``)."""
        rng = self.rng
        picture, skin, delta = self._background(skin_type)
        if kind == "non-neoplastic":
            patches = [Blob(self._centre(0.25), 0.08, 0.02) for _ in range(int(rng.integers(2, 5)))]
            picture.paste(_rgb(skin + delta * REDNESS), mask=self._mask(patches, blur=0.04))
        else:
            malignant = kind == "malignant"
            radius = 0.2 if malignant else 0.18
            irregularity = rng.uniform(0.06, 0.22) if malignant else rng.uniform(0.0, 0.08)
            centre = self._centre(0.12)
            lesion = skin * (1 - delta / _luma(skin))
            picture.paste(_rgb(lesion), mask=self._mask([Blob(centre, radius, irregularity)]))
            if rng.random() < (0.7 if malignant else 0.15):
                inner = centre + rng.uniform(-0.06, 0.06, 2)
                patch = skin * (1 - 1.6 * delta / _luma(skin))
                picture.paste(_rgb(patch), mask=self._mask([Blob(inner, 0.4 * radius, irregularity)]))
        return self._finish(picture)

    def paint_condition(self, skin_type: int, condition: str) -> Image.Image:
        """The multi-class task's image: the lesion follows the ``nine_partition_label`` (``CONDITIONS``)."""
        rng = self.rng
        style = CONDITIONS[condition]
        picture, skin, delta = self._background(skin_type)
        blobs = [
            Blob(
                self._centre(style.spread),
                rng.uniform(*style.radius),
                rng.uniform(*style.irregularity),
                rng.uniform(*style.aspect),
                rng.uniform(0, np.pi),
            )
            for _ in range(int(rng.integers(style.blobs[0], style.blobs[1] + 1)))
        ]
        picture.paste(_rgb(_tint(skin, delta, style.colour)), mask=self._mask(blobs, blur=style.blur))
        if rng.random() < style.inner_chance:
            first = blobs[0]
            inner = first._replace(centre=first.centre + rng.uniform(-0.05, 0.05, 2), radius=0.4 * first.radius)
            picture.paste(_rgb(_tint(skin, delta, style.inner_colour)), mask=self._mask([inner], blur=style.blur))
        return self._finish(picture)

    def _background(self, skin_type: int) -> tuple[Image.Image, np.ndarray, float]:
        """A lit skin background, the skin colour and the lesion contrast of this skin type."""
        picture = self.backgrounds[skin_type][int(self.rng.integers(LIGHTINGS))].copy()
        return picture, np.array(SKIN_RGB[skin_type], dtype=np.float32), LESION_DELTA[skin_type]

    def _finish(self, picture: Image.Image) -> Image.Image:
        """Upscale the working-size drawing and add the sensor noise at full size."""
        if self.work < self.size:
            picture = picture.resize((self.size, self.size), Image.Resampling.BILINEAR)
        x, y = (int(v) for v in self.rng.integers(0, self.size, 2))
        noise = self.noise.crop((x, y, x + self.size, y + self.size))
        return ImageChops.add(picture, noise, scale=1.0, offset=-128)

    def _centre(self, spread: float) -> np.ndarray:
        """A blob centre near the image centre, as a fraction of the image side."""
        return 0.5 + self.rng.uniform(-spread, spread, 2)

    def _mask(self, blobs: list[Blob], blur: float = 0.0) -> Image.Image:
        """Mask of star-shaped blobs: the radius is modulated by random harmonics 2–6 scaled by the
        blob's ``irregularity``, then stretched by ``aspect`` along the direction ``angle``."""
        s, rng = self.work, self.rng
        mask = Image.new("L", (s, s), 0)
        draw = ImageDraw.Draw(mask)
        theta = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        k = np.arange(2, 7)[:, None]
        for blob in blobs:
            amplitude = blob.irregularity * rng.uniform(0.3, 1.0, (5, 1)) / np.sqrt(k - 1)
            r = 1 + (amplitude * np.cos(k * theta + rng.uniform(0, 2 * np.pi, (5, 1)))).sum(axis=0)
            r *= s * blob.radius * rng.uniform(0.8, 1.2)
            dx, dy = r * np.cos(theta), r * np.sin(theta)
            if blob.aspect != 1.0:
                along, across = dx * blob.aspect, dy / blob.aspect
                cos, sin = np.cos(blob.angle), np.sin(blob.angle)
                dx, dy = along * cos - across * sin, along * sin + across * cos
            xs, ys = s * blob.centre[0] + dx, s * blob.centre[1] + dy
            draw.polygon(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=255)
        return mask.filter(ImageFilter.GaussianBlur(blur * s)) if blur else mask


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))


def _tint(skin: np.ndarray, delta: float, colour: tuple[float, float]) -> np.ndarray:
    """The skin darkened by ``colour[0]·delta`` grey levels of luminance, then shifted towards red by
    ``colour[1]·delta`` (negative darkening lightens)."""
    darkening, redness = colour
    return skin * (1 - darkening * delta / _luma(skin)) + redness * delta * REDNESS


def _rgb(colour: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in np.clip(np.rint(colour), 0, 255))
    return r, g, b
