"""open_clip, imported without transformers and timm unless a model needs them.

open_clip imports transformers (Hugging Face text towers, CoCa captioning) and timm (timm image towers) as it
starts; msclip's models use neither, and those imports cost over a second of every command's start on 2 cores.
So open_clip's first import sees them as absent, and an architecture that needs one gets open_clip's modules
that use it reloaded with the library present. (What remains of open_clip's import is mostly torchvision,
which loads torch._dynamo.)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

#: Optional libraries open_clip imports at start-up -> its modules that bind them at import time (the first
#: one holds the library under its own name, None when it was absent).
OPTIONAL_LIBRARIES = {
    "transformers": ("open_clip.hf_model", "open_clip.coca_model"),
    "timm": ("open_clip.timm_model",),
}


def import_open_clip():
    """The open_clip module; its first import here leaves the optional libraries unloaded."""
    if "open_clip" not in sys.modules:
        hidden = [name for name in OPTIONAL_LIBRARIES if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # open_clip takes it as absent
        try:
            import open_clip
        finally:
            for name in hidden:
                del sys.modules[name]
    import open_clip

    return open_clip


def open_clip_for(arch: str):
    """The open_clip module, able to build ``arch`` (optional libraries loaded when its towers need them)."""
    open_clip = import_open_clip()
    for library in needed_libraries(open_clip, arch):
        modules = [sys.modules[m] for m in OPTIONAL_LIBRARIES[library] if m in sys.modules]
        hidden = bool(modules) and getattr(modules[0], library, None) is None
        if hidden and importlib.util.find_spec(library):
            for module in modules:
                importlib.reload(module)
    return open_clip


def needed_libraries(open_clip, arch: str) -> list[str]:
    """Optional libraries ``arch`` needs; unknown (hub) configs are assumed to need them all."""
    config = open_clip.get_model_config(arch)
    if config is None:
        return list(OPTIONAL_LIBRARIES)
    needs = {
        "transformers": "hf_model_name" in config.get("text_cfg", {}) or "multimodal_cfg" in config,
        "timm": "timm_model_name" in config.get("vision_cfg", {}),
    }
    return [library for library, needed in needs.items() if needed]
