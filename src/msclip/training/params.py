"""What trains (presets), with which learning rate and weight decay, and the warm-up + cosine schedule."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

#: Parameter-name prefixes of the patch embedding (open_clip ViT, timm trunks).
PATCH_EMBED = ("visual.conv1.", "visual.trunk.patch_embed.")
#: The text tower of open_clip's CLIP, without its output projection.
TEXT_TOWER = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text.")
#: Always trained: the learnable temperature (and SigLIP's bias).
ALWAYS = ("logit_scale", "logit_bias")


def _visual_attention(name: str) -> bool:
    return name.startswith(PATCH_EMBED) or (name.startswith("visual.") and ".attn." in name)


#: preset -> does this parameter train? (the temperature always does)
PRESETS: dict[str, Callable[[str], bool]] = {
    "patch-embed": lambda name: name.startswith(PATCH_EMBED),
    "visual": lambda name: name.startswith("visual."),
    "visual-attn": _visual_attention,
    "lock-text": lambda name: not name.startswith(TEXT_TOWER),
    "full": lambda name: True,
}


def apply_preset(model: torch.nn.Module, preset: str) -> int:
    """Freeze everything the preset leaves out; returns the number of trainable parameters."""
    chooser = PRESETS[preset]
    count = 0
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(ALWAYS) or chooser(name))
        count += param.numel() if param.requires_grad else 0
    return count


def _no_decay(name: str, param: torch.Tensor) -> bool:
    """As open_clip: no weight decay on gains, biases, embeddings and the temperature."""
    return (
        param.ndim < 2
        or "bn" in name
        or "ln" in name
        or "bias" in name
        or "embedding" in name
        or name in ALWAYS
    )


def param_groups(model: torch.nn.Module, lr: float, rest_factor: float, weight_decay: float) -> list[dict]:
    """Patch embedding at ``lr``, the rest at ``lr * rest_factor``; decay only on weight matrices."""
    groups: dict[tuple[str, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "patch_embed" if name.startswith(PATCH_EMBED) else "rest"
        decay = not _no_decay(name, param)
        group = groups.setdefault(
            (part, decay),
            {
                "name": f"{part}{'' if decay else '_no_decay'}",
                "params": [],
                "lr": lr if part == "patch_embed" else lr * rest_factor,
                "weight_decay": weight_decay if decay else 0.0,
            },
        )
        group["params"].append(param)
    return list(groups.values())


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR factor: linear warm-up from 0 to 1, then cosine decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor
