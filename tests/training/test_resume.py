"""Exact resume: N steps straight equal N/2 steps, stop, resume from the checkpoint, N/2 steps."""

from __future__ import annotations

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
