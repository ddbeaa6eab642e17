"""A real learning test: the tiny model learns the captions of the real chips from random weights."""

from __future__ import annotations

import pandas as pd

from msclip.training import Trainer


def test_tiny_model_learns_image_to_text_retrieval(tiny_config, pairs_table):
    config = tiny_config(
        batch_size=5, steps=200, warmup_steps=20, lr=2e-3, val_data=pairs_table, val_every=100
    )
    trainer = Trainer(config, progress=False)
    before = trainer.validate()
    summary = trainer.run()
    log = pd.read_csv(trainer.output / "train_log.csv")
    first, last = log["loss"].head(5).mean(), log["loss"].tail(5).mean()
    assert last < 0.05 * first, (first, last)
    assert summary["i2t_R@1"] == 1.0, summary  # every chip retrieves one of its own captions first
    assert summary["t2i_R@5"] == 1.0
    assert before["i2t_R@1"] < 1.0  # it was learned, not there from the start
    val = pd.read_csv(trainer.output / "val_log.csv")
    assert list(val["step"]) == [100, 200]
    assert (trainer.output / "tensorboard").is_dir()
