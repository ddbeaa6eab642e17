"""Continual contrastive pre-training and fine-tuning of (multispectral) CLIP models.

``train(make_config(...))`` or ``msclip train``: any open_clip architecture widened to the chosen bands,
the official Llama3-MS-CLIP checkpoint or one of ours; symmetric InfoNCE over the global batch, GradCache,
presets of what trains, plain PyTorch DDP (torchrun), exact resume, export to the official layout.
Names are imported on first use, so the command line can read the config fields without loading torch.
"""

from msclip._lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "msclip.training.config",
    "Trainer": "msclip.training.trainer",
    "make_config": "msclip.training.config",
    "train": "msclip.training.trainer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
