"""Training's transform extends the inference transform: the same resize and normalisation, a random crop
where inference takes the centre."""

from __future__ import annotations

import numpy as np
import torch

from msclip.models.transforms import MultispectralTransform
from msclip.training.data import TrainTransform

MEAN, STD = (1000.0, 1200.0, 900.0), (500.0, 600.0, 700.0)


def _chip(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 5000, (3, height, width)).astype(np.int16)


def test_a_square_chip_trains_as_it_is_used_without_flips():
    chip = _chip(264, 264)  # an SSL4EO-S12 chip: resized to 224 at inference, so in training too
    inference = MultispectralTransform(MEAN, STD, 224)(chip)
    training = TrainTransform(MEAN, STD, 224, flips=False)(chip, np.random.default_rng(1))
    torch.testing.assert_close(training, inference)


def test_the_random_crop_is_a_window_of_the_inference_resize():
    chip = _chip(224, 320)
    inference = MultispectralTransform(MEAN, STD, 224)
    resized = inference.normalize(inference.resize(chip))
    crop = TrainTransform(MEAN, STD, 224, flips=False)(chip, np.random.default_rng(3))
    windows = [resized[..., left : left + 224] for left in range(resized.shape[-1] - 224 + 1)]
    assert crop.shape == (3, 224, 224) and any(torch.equal(crop, w) for w in windows)


def test_small_chips_are_upsampled_and_eight_bit_pictures_scaled_alike():
    picture = np.random.default_rng(2).integers(0, 256, (3, 64, 64)).astype(np.uint8)
    inference = MultispectralTransform((0.5,) * 3, (0.25,) * 3, 224, scale=1 / 255)(picture)
    training = TrainTransform((0.5,) * 3, (0.25,) * 3, 224, flips=False, scale=1 / 255)(
        picture, np.random.default_rng(0)
    )
    torch.testing.assert_close(training, inference)
    assert inference.abs().max() < 10  # scaled to [0, 1] before the normalisation
