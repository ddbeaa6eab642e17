"""The scoring loop: each model's own input from the same files, bad files skipped, order kept."""

from __future__ import annotations

import numpy as np
import torch

from msclip.bands import RGB, S2_10, select_bands
from msclip.data import InputOptions, rgb_composite
from msclip.evaluation.datasets import resolve, sample_source
from msclip.evaluation.runner import evaluate_dataset, sample_dataset, score
from msclip.text import templates
from tests.evaluation import layouts


def test_rgb_models_get_the_clipped_true_colour_composite_of_multispectral_files(tmp_path):
    layouts.eurosat_ms(tmp_path, nested=False, split=False)
    dataset = resolve(f"eurosat-ms={tmp_path}", tmp_path)
    snow = next(i for i, s in enumerate(dataset.samples) if s.source.endswith("AnnualCrop_7.tif"))  # 4th chip
    record = sample_dataset(dataset, RGB, lambda array: array, InputOptions())[snow]
    raster = sample_source(dataset.samples[snow], dataset.layout).read()
    expected = rgb_composite(select_bands(raster.array, raster.bands, RGB).astype(np.float32))
    assert record["image"].dtype == np.uint8
    np.testing.assert_array_equal(record["image"], expected)
    assert (select_bands(raster.array, raster.bands, RGB) > 3000).any()  # snow brighter than the scale's top
    assert int(expected.max()) == 255  # ... clips at 255 instead of wrapping around


def test_a_corrupt_first_file_is_skipped_and_the_rest_keeps_its_order(tmp_path, tiny_model):
    layouts.eurosat_ms(tmp_path, nested=False, split=False)
    (tmp_path / "AnnualCrop" / "AnnualCrop_0.tif").write_bytes(b"not a tiff")
    dataset = resolve(f"eurosat-ms={tmp_path}", tmp_path)
    classifier = torch.nn.functional.normalize(torch.randn(3, 32), dim=-1)
    scores = score(tiny_model, dataset, classifier, batch_size=4, workers=0)
    bad = [i for i, s in enumerate(dataset.samples) if s.source.endswith("AnnualCrop_0.tif")]
    assert bad == [0]  # the first file: the compatibility probe must look past it
    assert scores.indices == [i for i in range(len(dataset.samples)) if i not in bad]
    assert len(scores.skipped) == 1 and "AnnualCrop_0.tif" in scores.skipped[0][0]
    assert scores.logits.shape == (len(dataset.samples) - 1, 3)
    evaluation = evaluate_dataset(tiny_model, dataset, templates("clip"), workers=0)
    assert evaluation.n_images == len(dataset.samples) - 1 and len(evaluation.skipped) == 1
    assert tiny_model.bands == S2_10
