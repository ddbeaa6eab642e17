"""open_clip, imported without transformers unless a model needs it.

open_clip imports transformers as it starts, for Hugging Face text towers and CoCa captioning; msclip's
models use neither, and that import costs about a second of every command's start (~1 of 6 s CPU on 2
cores). So open_clip's first import sees transformers as absent, and an architecture that needs it gets
open_clip's two modules that use it reloaded with transformers present.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

_MODULES_USING_TRANSFORMERS = ("open_clip.hf_model", "open_clip.coca_model")


def import_open_clip():
    """The open_clip module; its first import here leaves transformers unloaded."""
    if "open_clip" not in sys.modules and "transformers" not in sys.modules:
        sys.modules["transformers"] = None  # type: ignore[assignment]  # open_clip takes it as absent
        try:
            import open_clip
        finally:
            del sys.modules["transformers"]
    import open_clip

    return open_clip


def open_clip_for(arch: str):
    """The open_clip module, able to build ``arch`` (transformers loaded when its towers need it)."""
    open_clip = import_open_clip()
    hf_model = sys.modules.get("open_clip.hf_model")
    missing = hf_model is not None and getattr(hf_model, "transformers", None) is None
    if missing and needs_transformers(open_clip, arch) and importlib.util.find_spec("transformers"):
        for name in _MODULES_USING_TRANSFORMERS:
            if name in sys.modules:
                importlib.reload(sys.modules[name])
    return open_clip


def needs_transformers(open_clip, arch: str) -> bool:
    """A Hugging Face text tower or a CoCa decoder; unknown (hub) configs are assumed to."""
    config = open_clip.get_model_config(arch)
    if config is None:
        return True
    return "hf_model_name" in config.get("text_cfg", {}) or "multimodal_cfg" in config
