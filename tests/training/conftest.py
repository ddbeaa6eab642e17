"""Captioned training chips built from the real L2A examples, and a tiny-model config to train on them."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from msclip.training import make_config
from tests.conftest import L2A_CHIPS

#: What each example chip shows (see tests/data/README.md), in two wordings each.
CAPTIONS = {
    "282D_485L_3_3": ["a sandy coast next to the open ocean", "beach and sea water along a shoreline"],
    "38D_378R_2_3": ["dry farmland with eroded bare land", "arid fields and gullies of eroded soil"],
    "433D_629L_3_1": [
        "fields with a river and a small village",
        "a village beside a river among crop fields",
    ],
    "609U_541L_3_0": [
        "snow covered land with a frozen meandering river",
        "a winter landscape of snow and ice",
    ],
    "637U_59R_1_3": ["rural agricultural fields", "a patchwork of farm parcels in the countryside"],
}


@pytest.fixture(autouse=True)
def _one_thread():
    """The test machine is shared: one intra-op thread is faster than two fighting for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def pairs_table(tmp_path_factory) -> str:
    """A (image, caption) table: each real chip with its two captions."""
    rows = [
        {"image": str(path), "caption": caption}
        for path in sorted(L2A_CHIPS.glob("*.tif"))
        for caption in CAPTIONS[path.stem]
    ]
    table = tmp_path_factory.mktemp("pairs") / "pairs.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return str(table)


@pytest.fixture
def tiny_config(pairs_table, tmp_path):
    """A config factory: the tiny random model on the captioned chips, CPU, no periodic work."""

    def build(**overrides):
        values = {
            "model": "msclip-tiny",
            "model_bands": None,
            "pretrained": None,
            "random_init": True,
            "data": pairs_table,
            "batch_size": 4,
            "steps": 4,
            "warmup_steps": 1,
            "lr": 1e-3,
            "lr_rest_factor": 1.0,
            "crop_scale": [0.5, 1.0],
            "device": "cpu",
            "output": str(tmp_path / "run"),
            "save_every": 0,
            "val_every": 0,
            "log_every": 1,
        }
        values.update(overrides)
        return make_config(overrides=values)

    return build
