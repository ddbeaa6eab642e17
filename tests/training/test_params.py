"""Presets choose what trains; the patch embedding gets its own learning rate; warm-up then cosine."""

from __future__ import annotations

import pytest
import torch

from msclip import load_model
from msclip.training import Trainer
from msclip.training.params import apply_preset, param_groups, warmup_cosine


@pytest.fixture
def clip():
    return load_model("msclip-tiny", random_init=True, device="cpu").clip


def _trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_presets(clip):
    apply_preset(clip, "patch-embed")
    assert _trainable(clip) == {"visual.conv1.weight", "logit_scale"}
    apply_preset(clip, "visual-attn")
    assert {n for n in _trainable(clip) if ".attn." not in n} == {"visual.conv1.weight", "logit_scale"}
    assert not any(n.startswith("transformer.") for n in _trainable(clip))
    apply_preset(clip, "lock-text")
    names = _trainable(clip)
    assert "text_projection" in names and "visual.proj" in names
    assert not any(n.startswith(("transformer.", "token_embedding")) for n in names)
    apply_preset(clip, "visual")
    assert "text_projection" not in _trainable(
        clip
    ) and "visual.transformer.resblocks.0.mlp.c_fc.weight" in _trainable(clip)
    apply_preset(clip, "full")
    assert _trainable(clip) == {name for name, _ in clip.named_parameters()}


def test_patch_embedding_learning_rate_and_decay(clip):
    apply_preset(clip, "full")
    groups = {g["name"]: g for g in param_groups(clip, lr=3.76e-5, rest_factor=0.1, weight_decay=0.05)}
    assert groups["patch_embed"]["lr"] == 3.76e-5 and groups["rest"]["lr"] == pytest.approx(3.76e-6)
    assert [p.shape for p in groups["patch_embed"]["params"]] == [clip.visual.conv1.weight.shape]
    no_decay = groups["rest_no_decay"]
    assert no_decay["weight_decay"] == 0 and any(p is clip.logit_scale for p in no_decay["params"])


def test_warmup_then_cosine():
    factor = warmup_cosine(warmup_steps=10, total_steps=110)
    assert factor(0) == pytest.approx(0.1) and factor(9) == 1.0
    assert factor(60) == pytest.approx(0.5) and factor(110) == pytest.approx(0.0)


def test_bf16_autocast_and_a_frozen_text_tower_train(tiny_config):
    trainer = Trainer(
        tiny_config(precision="bf16", preset="patch-embed", steps=1, temperature=0.07), progress=False
    )
    text_before = trainer.clip.token_embedding.weight.clone()
    conv_before = trainer.clip.visual.conv1.weight.clone()
    trainer.run()
    assert torch.equal(trainer.clip.token_embedding.weight, text_before)
    assert not torch.equal(trainer.clip.visual.conv1.weight, conv_before)
    assert trainer.clip.logit_scale.item() != pytest.approx(
        torch.log(torch.tensor(1 / 0.07)).item(), abs=1e-6
    )
