"""Whole scenes: sliding windows over GeoTIFF/COG, SAFE or STAC scenes -> embeddings and class maps.

Names are imported on first use, so :mod:`msclip.scenes.source` (``is_scene``: is an input a scene or a
chip?) needs only the core dependencies; embedding and maps need the ``[scenes]`` extra (geopandas).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msclip.scenes.embed import WindowOptions, embed_scene, write_geoparquet
    from msclip.scenes.mapping import SceneMap, map_scene, write_map
    from msclip.scenes.source import Scene, is_scene, open_scene

#: Public name -> the module that defines it.
_EXPORTS = {
    "Scene": "source",
    "is_scene": "source",
    "open_scene": "source",
    "WindowOptions": "embed",
    "embed_scene": "embed",
    "write_geoparquet": "embed",
    "SceneMap": "mapping",
    "map_scene": "mapping",
    "write_map": "mapping",
}

__all__ = [
    "Scene",
    "SceneMap",
    "WindowOptions",
    "embed_scene",
    "is_scene",
    "map_scene",
    "open_scene",
    "write_geoparquet",
    "write_map",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'msclip.scenes' has no attribute {name!r}")
    return getattr(importlib.import_module(f"msclip.scenes.{_EXPORTS[name]}"), name)
