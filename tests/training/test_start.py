"""Where training starts: an OpenCLIP RGB checkpoint widened to the bands, or an official-layout checkpoint."""

from __future__ import annotations

import torch

from msclip import load_model
from msclip.bands import RGB, S2_10
from msclip.training import Trainer


def test_start_from_an_rgb_open_clip_checkpoint_widened_with_zeros(tiny_config, tmp_path):
    rgb = load_model("msclip-tiny", bands=RGB, random_init=True, device="cpu").clip
    torch.save(rgb.state_dict(), tmp_path / "rgb.pt")
    trainer = Trainer(
        tiny_config(model_bands=list(S2_10), random_init=False, pretrained=str(tmp_path / "rgb.pt"))
    )
    conv = trainer.clip.visual.conv1.weight
    for rgb_index, band in enumerate(RGB):
        assert torch.equal(conv[:, S2_10.index(band)], rgb.visual.conv1.weight[:, rgb_index])
    assert not conv[:, S2_10.index("B08")].any()  # new bands start at zero, as the paper
    assert torch.equal(
        trainer.clip.transformer.resblocks[0].mlp.c_fc.weight, rgb.transformer.resblocks[0].mlp.c_fc.weight
    )
    assert (
        trainer.clip.logit_scale.item() == torch.log(torch.tensor(1 / 0.07)).item()
    )  # temperature starts at 0.07


def test_continue_from_an_exported_official_checkpoint(tiny_config, tmp_path):
    first = Trainer(tiny_config(output=str(tmp_path / "first"), steps=1), progress=False)
    first.run()
    follow = Trainer(
        tiny_config(
            output=str(tmp_path / "next"),
            random_init=False,
            checkpoint=str(tmp_path / "first" / "model.pt"),
            temperature=None,
        ),
        progress=False,
    )
    for name, tensor in first.clip.state_dict().items():
        assert torch.equal(follow.clip.state_dict()[name], tensor), name
