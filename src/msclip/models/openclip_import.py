"""open_clip, imported without transformers and timm unless a model needs them.

open_clip imports transformers (Hugging Face text towers, CoCa captioning) and timm (timm image towers) as it
starts; msclip's models use neither, and those imports cost over a second of every command's start on 2 cores.
So open_clip's first import sees them as absent, and an architecture that needs one gets open_clip's modules
that use it reloaded with the library present.

open_clip also imports torchvision (for its transforms), whose ``torchvision.ops.roi_align`` imports one
function of ``torch._dynamo`` as it loads: ~1.4 s on 2 cores for a compiler msclip never runs. While
torchvision is first imported, that function is a stand-in that imports torch._dynamo at its first call.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types

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
            with dynamo_deferred():
                import torchvision  # noqa: F401  # open_clip's import of it, with torch._dynamo deferred
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


#: The module torchvision imports from as it loads (``torchvision.ops.roi_align``); it binds functions only.
DYNAMO_UTILS = "torch._dynamo.utils"


class _DeferredModule(types.ModuleType):
    """Stands for a module while another is imported: each name it is asked for is a function that imports
    the real module, and calls its function of that name, when it is first called."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _deferred_function(self.__name__, name)


def _deferred_function(module: str, name: str):
    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


@contextlib.contextmanager
def dynamo_deferred():
    """Import torchvision without importing torch._dynamo (nothing to do once either is loaded).

    Python's import finds a submodule in ``sys.modules`` without importing its package, so torchvision's
    ``from torch._dynamo.utils import ...`` binds stand-ins and ``torch._dynamo`` stays unloaded; the
    stand-in leaves ``sys.modules`` when torchvision is loaded, and the first call imports the real module.
    """
    if "torchvision" in sys.modules or "torch._dynamo" in sys.modules or DYNAMO_UTILS in sys.modules:
        yield
        return
    stand_in = _DeferredModule(DYNAMO_UTILS)
    sys.modules[DYNAMO_UTILS] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(DYNAMO_UTILS) is stand_in:
            del sys.modules[DYNAMO_UTILS]
