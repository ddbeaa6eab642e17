"""msclip: vision-language models for multispectral Sentinel-2 imagery (Llama3-MS-CLIP and friends)."""

from msclip.adapt import Head, load_head, save_head
from msclip.data import InputOptions
from msclip.errors import MSClipError
from msclip.io import read
from msclip.models import ModelSpec, MSClipModel, list_models, load_model, register_model
from msclip.text import class_embeddings, templates
from msclip.zeroshot import Result, classify, embed, retrieve

__version__ = "0.1.0"

__all__ = [
    "Head",
    "InputOptions",
    "MSClipError",
    "MSClipModel",
    "ModelSpec",
    "Result",
    "class_embeddings",
    "classify",
    "embed",
    "list_models",
    "load_head",
    "load_model",
    "read",
    "register_model",
    "retrieve",
    "save_head",
    "templates",
]
