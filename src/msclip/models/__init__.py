"""Models: registry, checkpoints, patch-embedding widening, transforms and backends."""

from msclip.models.model import ModelArgs, MSClipModel, best_device, load_model
from msclip.models.registry import ModelSpec, list_models, register_model, spec_for
from msclip.models.widen import widen_patch_embedding

__all__ = [
    "MSClipModel",
    "ModelArgs",
    "ModelSpec",
    "best_device",
    "list_models",
    "load_model",
    "register_model",
    "spec_for",
    "widen_patch_embedding",
]
