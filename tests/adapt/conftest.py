"""Labelled crops of the five real example chips (one class per chip) and msclip-tiny's random weights
saved in the official checkpoint layout."""

from pathlib import Path

import pytest

from tests.conftest import L2A_CHIPS
from tests.helpers import read_array, write_geotiff

CROP = 56  # a 4 x 4 grid of crops per 224-pixel chip: 8 to train on, 8 to test


@pytest.fixture(scope="session")
def crops(tmp_path_factory) -> Path:
    """train/<chip>/*.tif and test/<chip>/*.tif: alternate crops of each chip's grid."""
    root = tmp_path_factory.mktemp("crops")
    for chip in sorted(L2A_CHIPS.glob("*.tif")):
        array = read_array(chip)
        for number in range((224 // CROP) ** 2):
            row, col = divmod(number, 224 // CROP)
            split = "train" if number % 2 == 0 else "test"
            path = root / split / chip.stem / f"{row}_{col}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            crop = array[:, row * CROP : (row + 1) * CROP, col * CROP : (col + 1) * CROP]
            write_geotiff(path, crop, like=chip)
    return root


@pytest.fixture(scope="session")
def official_tiny_checkpoint(tmp_path_factory) -> Path:
    """msclip-tiny's fixed random weights, written as the official Llama3-MS-CLIP .pt layout."""
    import torch

    from msclip import load_model
    from msclip.models.checkpoint import to_official_layout

    path = tmp_path_factory.mktemp("official") / "tiny_official.pt"
    torch.save(to_official_layout(load_model("msclip-tiny", device="cpu").clip.state_dict()), path)
    return path
