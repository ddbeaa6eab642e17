"""Whole scenes: sliding windows over GeoTIFF/COG, SAFE or STAC scenes -> embeddings and class maps."""

from msclip.scenes.embed import WindowOptions, embed_scene, write_geoparquet
from msclip.scenes.mapping import SceneMap, map_scene, write_map
from msclip.scenes.source import Scene, is_scene, open_scene

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
