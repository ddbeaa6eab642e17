"""Symmetric CLIP InfoNCE over the global batch, computed directly or with gradient caching.

GradCache (Gao et al., 2021): encode the whole batch without a graph, take the loss and its gradient with
respect to the *features*, then re-encode chunk by chunk with a graph and back-propagate those cached
feature gradients. The parameter gradient equals the full-batch one, because the contrastive loss sees
every negative at once, while memory holds only one chunk's activations. Accumulating gradients over
small batches instead would change the loss (fewer negatives).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import torch
from open_clip.loss import ClipLoss


class _ClipLoss(ClipLoss):
    """open_clip's loss without the FutureWarning its gather raises on every call (one per rank and step):
    ``torch.distributed.nn.all_gather`` is deprecated, yet still the collective that carries gradients."""

    def get_logits(self, *args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", "torch.distributed.nn.functional.all_gather is deprecated", FutureWarning
            )
            return super().get_logits(*args, **kwargs)


def make_loss(rank: int = 0, world_size: int = 1) -> ClipLoss:
    """open_clip's loss; across ranks features are gathered *with* gradients so negatives span the global batch."""
    return _ClipLoss(
        local_loss=False, gather_with_grad=True, cache_labels=True, rank=rank, world_size=world_size
    )


def _towers(model: torch.nn.Module, images: torch.Tensor, tokens: torch.Tensor):
    """Normalised image and text features and exp(logit_scale), through ``model.forward`` (so DDP syncs)."""
    image_features, text_features, scale = model(images, tokens)[:3]
    return image_features.float(), text_features.float(), scale.float()


def contrastive_step(
    model: torch.nn.Module,
    loss_fn: Callable,
    images: torch.Tensor,
    tokens: torch.Tensor,
    chunk: int | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    scale_loss: Callable[[torch.Tensor], torch.Tensor] = lambda loss: loss,
) -> float:
    """Forward and backward of one batch; gradients land in ``model``'s parameters. Returns the loss.

    ``model`` is open_clip's CLIP or a DDP wrapper of it; ``chunk`` enables GradCache with that many
    samples per re-encoding pass. ``scale_loss`` is the fp16 GradScaler's ``scale`` when one is used.
    """
    if chunk is None or chunk >= len(images):
        with autocast():
            image_features, text_features, scale = _towers(model, images, tokens)
        loss = loss_fn(image_features, text_features, scale)
        scale_loss(loss).backward()
        return float(loss.detach())
    return _grad_cache_step(model, loss_fn, images, tokens, chunk, autocast, scale_loss)


def _grad_cache_step(model, loss_fn, images, tokens, chunk, autocast, scale_loss) -> float:
    pieces = list(zip(images.split(chunk), tokens.split(chunk), strict=True))
    rng_states = []
    image_parts, text_parts = [], []
    with torch.no_grad():
        for image_chunk, token_chunk in pieces:
            rng_states.append(_rng_state(images.device))
            with autocast():
                image_features, text_features, scale = _towers(model, image_chunk, token_chunk)
            image_parts.append(image_features)
            text_parts.append(text_features)
    image_all = torch.cat(image_parts).requires_grad_()
    text_all = torch.cat(text_parts).requires_grad_()
    scale = scale.detach().requires_grad_()
    loss = loss_fn(image_all, text_all, scale)
    scale_loss(loss).backward()
    assert image_all.grad is not None and text_all.grad is not None  # backward() just filled them
    image_grads = image_all.grad.split(chunk)
    text_grads = text_all.grad.split(chunk)
    no_sync = getattr(model, "no_sync", contextlib.nullcontext)
    for index, (image_chunk, token_chunk) in enumerate(pieces):
        last = index == len(pieces) - 1
        _set_rng_state(rng_states[index], images.device)  # same dropout as in the first pass
        with contextlib.nullcontext() if last else no_sync():
            with autocast():
                image_features, text_features, chunk_scale = _towers(model, image_chunk, token_chunk)
            surrogate = (image_features * image_grads[index]).sum() + (
                text_features * text_grads[index]
            ).sum()
            if last:
                surrogate = surrogate + chunk_scale * scale.grad
            surrogate.backward()
    return float(loss.detach())


def _rng_state(device: torch.device) -> tuple:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)
