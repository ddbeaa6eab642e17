"""Exact resume: N steps straight equal N/2 steps, stop, resume from the checkpoint, N/2 steps."""

from __future__ import annotations

import pandas as pd
import torch

from msclip.training import Trainer


def test_resume_continues_exactly(tiny_config, tmp_path):
    # batch 4 of 5 chips: one step per epoch, so the run also crosses epochs (new order, new captions)
    straight = Trainer(tiny_config(output=str(tmp_path / "straight")), progress=False)
    straight.run()

    first = Trainer(tiny_config(output=str(tmp_path / "resumed"), save_every=2), progress=False)
    first.run(max_steps=2)
    assert first.step == 2 and not (tmp_path / "resumed" / "model.pt").exists()  # stopped, not finished
    second = Trainer(
        tiny_config(output=str(tmp_path / "resumed"), save_every=2, resume="auto"), progress=False
    )
    assert (second.step, second.epoch, second.batch_in_epoch) == (2, 2, 0)
    second.run()

    assert second.step == straight.step == 4
    expected, actual = straight.clip.state_dict(), second.clip.state_dict()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)
    assert second.scheduler.last_epoch == straight.scheduler.last_epoch
    saved = torch.load(tmp_path / "resumed" / "checkpoints" / "step_00000004.pt", weights_only=True)
    assert saved["config"]["save_every"] == 2 and saved["config"]["model"] == "msclip-tiny"


def test_a_resumed_run_logs_each_step_once(tiny_config, tmp_path):
    """Killed after step 3 with a checkpoint at step 2: the resumed run logs steps 3 and 4 again, not twice."""
    output = str(tmp_path / "run")
    Trainer(tiny_config(output=output, save_every=2, val_every=1, val_fraction=0.2), progress=False).run(
        max_steps=3
    )
    resumed = Trainer(
        tiny_config(output=output, save_every=2, val_every=1, val_fraction=0.2, resume="auto"), progress=False
    )
    assert resumed.step == 2
    resumed.run()
    for kind in ("train", "val"):
        assert pd.read_csv(tmp_path / "run" / f"{kind}_log.csv")["step"].tolist() == [1, 2, 3, 4], kind
