"""One preprocessing formula: the trainer's torch twin and the numpy function agree bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from app.modelpkg.preprocessing import GREY_MEAN, RGB_STD, Preprocessing, normalization
from app.training.data import Normalizer


@pytest.mark.parametrize("channels", [1, 3])
def test_training_and_serving_normalise_identically(channels: int) -> None:
    pixels = np.random.default_rng(channels).integers(0, 256, size=(6, 20, 20, channels), dtype=np.uint8)
    pixels[0] = 0
    pixels[1] = 255
    served = Preprocessing.for_image(channels, 20).normalise(pixels)
    trained = Normalizer(channels, torch.device("cpu"))(torch.from_numpy(pixels).permute(0, 3, 1, 2)).numpy()
    assert served.dtype == np.float32 and served.shape == (6, channels, 20, 20) and served.flags.c_contiguous
    np.testing.assert_array_equal(served, trained)


def test_the_constants_are_fixed_and_stated() -> None:
    prep = Preprocessing.for_image(1, 32)
    assert (prep.color_mode, prep.mean, prep.std) == ("L", list(GREY_MEAN), [0.226])
    assert normalization(3)[1] == RGB_STD and Preprocessing.for_image(3, 32).resize.width == 32
    x = prep.normalise(np.full((1, 32, 32, 1), 255, dtype=np.uint8))
    assert np.allclose(x, (1.0 - 0.449) / 0.226)
    with pytest.raises(ValueError, match="1 or 3 channels, not 4"):
        normalization(4)


def test_the_wrong_pixels_are_refused() -> None:
    with pytest.raises(ValueError, match=r"expected \(N, H, W, 3\) pixels"):
        Preprocessing.for_image(3, 8).normalise(np.zeros((2, 8, 8, 1), dtype=np.uint8))


def test_inconsistent_preprocessing_is_refused() -> None:
    good = Preprocessing.for_image(3, 8).model_dump()
    with pytest.raises(ValidationError, match="color_mode L needs 1 mean and std values"):
        Preprocessing.model_validate({**good, "color_mode": "L"})
    with pytest.raises(ValidationError, match="std values must be positive"):
        Preprocessing.model_validate({**good, "std": [0.2, 0.0, 0.2]})
