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

Planted bias (documented, learnable): lesion contrast is lower on darker skin. A lesion darkens the
skin by ``LESION_DELTA`` grey levels of luminance — 60 on types 1–4, 20 on types 5–6 — under the same
noise, so border irregularity and variegation, the malignancy signals, are much harder to see on
types 5–6: a classifier's sensitivity and AUC there should drop. An audit of a model trained on this
cohort should find the gap by ``skin_type`` and ``skin_tone`` (dark = 4–6, diluted by type 4).

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
from pathlib import Path
from typing import Literal

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
WORK_SIZE = 128
LIGHTINGS = 8


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
) -> Path:
    """Write an upload-ready zip: ``manifest.csv`` (fitzpatrick17k layout) and one image per row."""
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
            image = painter.paint(scale if scale > 0 else int(rng.integers(1, 7)), row["three_partition_label"])
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
        rng = self.rng
        picture = self.backgrounds[skin_type][int(rng.integers(LIGHTINGS))].copy()
        skin = np.array(SKIN_RGB[skin_type], dtype=np.float32)
        delta = LESION_DELTA[skin_type]
        if kind == "non-neoplastic":
            patches = [(self._centre(0.25), 0.08, 0.02) for _ in range(int(rng.integers(2, 5)))]
            picture.paste(_rgb(skin + delta * REDNESS), mask=self._mask(patches, blur=0.04))
        else:
            malignant = kind == "malignant"
            radius = 0.2 if malignant else 0.18
            irregularity = rng.uniform(0.06, 0.22) if malignant else rng.uniform(0.0, 0.08)
            centre = self._centre(0.12)
            lesion = skin * (1 - delta / _luma(skin))
            picture.paste(_rgb(lesion), mask=self._mask([(centre, radius, irregularity)]))
            if rng.random() < (0.7 if malignant else 0.15):
                inner = centre + rng.uniform(-0.06, 0.06, 2)
                patch = skin * (1 - 1.6 * delta / _luma(skin))
                picture.paste(_rgb(patch), mask=self._mask([(inner, 0.4 * radius, irregularity)]))
        if self.work < self.size:
            picture = picture.resize((self.size, self.size), Image.Resampling.BILINEAR)
        x, y = (int(v) for v in rng.integers(0, self.size, 2))
        noise = self.noise.crop((x, y, x + self.size, y + self.size))
        return ImageChops.add(picture, noise, scale=1.0, offset=-128)

    def _centre(self, spread: float) -> np.ndarray:
        """A blob centre near the image centre, as a fraction of the image side."""
        return 0.5 + self.rng.uniform(-spread, spread, 2)

    def _mask(self, blobs: list[tuple[np.ndarray, float, float]], blur: float = 0.0) -> Image.Image:
        """Mask of star-shaped blobs ``(centre, radius, irregularity)`` (fractions of the side):
        the radius is modulated by random harmonics 2–6 scaled by ``irregularity``."""
        s, rng = self.work, self.rng
        mask = Image.new("L", (s, s), 0)
        draw = ImageDraw.Draw(mask)
        theta = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        k = np.arange(2, 7)[:, None]
        for centre, radius, irregularity in blobs:
            amplitude = irregularity * rng.uniform(0.3, 1.0, (5, 1)) / np.sqrt(k - 1)
            r = 1 + (amplitude * np.cos(k * theta + rng.uniform(0, 2 * np.pi, (5, 1)))).sum(axis=0)
            r *= s * radius * rng.uniform(0.8, 1.2)
            xs, ys = s * centre[0] + r * np.cos(theta), s * centre[1] + r * np.sin(theta)
            draw.polygon(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=255)
        return mask.filter(ImageFilter.GaussianBlur(blur * s)) if blur else mask


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))


def _rgb(colour: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in np.clip(np.rint(colour), 0, 255))
    return r, g, b
