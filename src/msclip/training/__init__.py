"""Continual contrastive pre-training and fine-tuning of (multispectral) CLIP models.

``train(make_config(...))`` or ``msclip train``: any open_clip architecture widened to the chosen bands,
the official Llama3-MS-CLIP checkpoint or one of ours; symmetric InfoNCE over the global batch, GradCache,
presets of what trains, plain PyTorch DDP (torchrun), exact resume, export to the official layout.
"""

from msclip.training.config import TrainConfig, make_config
from msclip.training.trainer import Trainer, train

__all__ = ["TrainConfig", "Trainer", "make_config", "train"]
