"""msclip: vision-language models for multispectral Sentinel-2 imagery (Llama3-MS-CLIP and friends).

The API is imported on first use (``msclip.classify`` loads torch then), so ``import msclip`` and
``msclip --help`` cost milliseconds, not the seconds of the deep-learning stack.
"""

from msclip._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Head": "msclip.adapt",
    "InputOptions": "msclip.data",
    "MSClipError": "msclip.errors",
    "MSClipModel": "msclip.models",
    "ModelSpec": "msclip.models",
    "Result": "msclip.zeroshot",
    "class_embeddings": "msclip.text",
    "classify": "msclip.zeroshot",
    "embed": "msclip.zeroshot",
    "list_models": "msclip.models",
    "load_head": "msclip.adapt",
    "load_model": "msclip.models",
    "read": "msclip.io",
    "register_model": "msclip.models",
    "retrieve": "msclip.zeroshot",
    "save_head": "msclip.adapt",
    "templates": "msclip.text",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
