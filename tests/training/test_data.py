"""Stratified batches, group encoding, augmentation."""

from __future__ import annotations

import numpy as np
import torch

from app.training.augment import augment, step_generator
from app.training.config import Augmentation
from app.training.data import stratified_batches
from app.training.groups import MISSING, encode_groups


def test_every_batch_holds_every_groups_positives() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    labels = (rng.random(n) < 0.1).astype(np.int8)
    codes = rng.choice([MISSING, 0, 1, 2, 3], n, p=[0.05, 0.5, 0.3, 0.13, 0.02])
    index = np.flatnonzero(rng.random(n) < 0.8)
    batches = stratified_batches(index, labels, codes, 32, np.random.default_rng(1))
    assert len(batches) == len(index) // 32
    for batch in batches:
        assert len(batch) == 32 and set(batch) <= set(index)
        assert {int(c) for c in codes[batch][labels[batch] == 1] if c >= 0} == {0, 1, 2, 3}
    again = stratified_batches(index, labels, codes, 32, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    # large strata are seen about once an epoch, not oversampled
    seen = np.concatenate(batches)
    big = index[(labels[index] == 0) & (codes[index] == 0)]
    assert len(np.unique(seen[np.isin(seen, big)])) > 0.9 * len(big)


def test_intersectional_groups_are_observed_cells_and_missing_joins_none() -> None:
    attributes = {
        "sex": np.array(["F", "M", "F", None, "M"], dtype=object),
        "age": np.array(["<60", "<60", ">=60", "<60", "<60"], dtype=object),
    }
    enc = encode_groups(attributes, ["sex", "age"])
    assert enc.labels == ("sex=F, age=<60", "sex=F, age=>=60", "sex=M, age=<60")
    assert enc.codes.tolist() == [0, 2, 1, MISSING, 2]
    assert encode_groups(attributes, ["sex"]).labels == ("F", "M")


def test_augmentation_is_seeded_and_stays_in_range() -> None:
    x = torch.rand(4, 3, 16, 16)
    cfg = Augmentation(rotate_degrees=10, brightness=0.2, contrast=0.2, vflip=True)
    a = augment(x, cfg, step_generator(0, 1, 2))
    assert torch.equal(a, augment(x, cfg, step_generator(0, 1, 2)))
    assert not torch.equal(a, augment(x, cfg, step_generator(0, 1, 3)))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    flips = augment(x, Augmentation(hflip=True, rotate_degrees=0, brightness=0, contrast=0), step_generator(0, 0, 0))
    for orig, out in zip(x, flips, strict=True):
        assert torch.equal(out, orig) or torch.equal(out, orig.flip(2))
