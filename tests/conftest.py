"""Shared fixtures: the real example chips, a tiny random model, an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: Real chips and the official checkpoint's layout, copied into the repository (see data/README.md).
SHARED_DATA = Path(__file__).resolve().parent / "data"
L2A_CHIPS = SHARED_DATA / "sentinel2_l2a_examples"
RGB_CHIPS = SHARED_DATA / "rgb_examples"
CHECKPOINT_LAYOUT = SHARED_DATA / "official_checkpoint_layout.json"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own text-embedding cache, so no test sees another's."""
    monkeypatch.setenv("MSCLIP_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def chip_paths() -> list[Path]:
    paths = sorted(L2A_CHIPS.glob("*.tif"))
    assert len(paths) == 5, f"expected the five example chips in {L2A_CHIPS}"
    return paths


@pytest.fixture(scope="session")
def tiny_model():
    """A 10-band 2-layer ViT with fixed random weights (no download)."""
    import torch

    from msclip import load_model

    torch.manual_seed(0)
    return load_model("msclip-tiny", device="cpu")
