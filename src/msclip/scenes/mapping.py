"""Zero-shot class maps of whole scenes: per-window class probabilities as a georeferenced COG."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import rasterio
import torch
from rasterio import Affine

from msclip.io import atomic_write
from msclip.models import MSClipModel
from msclip.models.checkpoint import checkpoint_sha256
from msclip.scenes.embed import WindowBatch, WindowOptions, scan_scene
from msclip.scenes.source import Scene
from msclip.zeroshot import class_scorer, transductive_scorer


@dataclass
class SceneMap:
    """Probabilities (classes, rows, cols; NaN where a window was skipped) on the map grid, and the windows."""

    classes: list[str]
    probabilities: np.ndarray
    transform: Affine
    crs: str
    windows: gpd.GeoDataFrame  # footprints with status, label, one column per class, embedding
    #: how the map was made, written as COG tags: how the windows were cut and kept (window_size, stride,
    #: min_valid, max_cloud), so that the same windows can be mapped again, and the weights' sha256 when the
    #: model has a checkpoint file, so that the embeddings kept in its footprints are used only with them
    made_with: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> np.ndarray:
        """Index of the most probable class per window; -1 where skipped."""
        skipped = np.isnan(self.probabilities[0])
        return np.where(skipped, -1, np.nan_to_num(self.probabilities, nan=-1).argmax(axis=0))


def map_scene(
    model: MSClipModel,
    scene: Scene,
    classes: Sequence[str] | None = None,
    template_set: str | Sequence[str] = "msclip",
    use_cache: bool = True,
    head=None,
    transductive: bool = False,
    **kwargs,
) -> SceneMap:
    """Probabilities of ``classes`` for every window, as :func:`msclip.classify` scores a chip (zero-shot,
    with a few-shot ``head``, and ``transductive`` over all the scene's windows at once)."""
    names, score = class_scorer(model, classes, template_set, use_cache, head)
    scores: dict[int, np.ndarray] = {}
    embeddings: dict[int, torch.Tensor] = {}

    def collect(batch: WindowBatch) -> None:
        embeddings.update(zip(batch.kept, batch.embeddings, strict=True))
        if batch.kept and not transductive:
            scores.update(zip(batch.kept, score(batch.embeddings).numpy(), strict=True))

    grid, windows = scan_scene(model, scene, collect, **kwargs)
    if transductive and embeddings:
        probabilities = transductive_scorer(score)(torch.stack(list(embeddings.values())))
        scores.update(zip(embeddings, probabilities.numpy(), strict=True))
    windows, probabilities = scored_windows(windows, names, scores)
    windows["embedding"] = [embeddings[k].tolist() if k in embeddings else None for k in range(len(grid))]
    filters = kwargs.get("windows") or WindowOptions()
    settings = {"window_size": grid.size, "stride": grid.stride, "min_valid": filters.min_valid}
    settings["max_cloud"] = filters.max_cloud
    weights = checkpoint_sha256(model.checkpoint)
    if weights:
        settings["weights_sha256"] = weights
    shaped = probabilities.reshape(len(names), grid.rows, grid.cols)
    return SceneMap(
        names, shaped, grid.map_transform(scene), scene.crs, windows, {k: str(v) for k, v in settings.items()}
    )


def scored_windows(
    windows: gpd.GeoDataFrame, names: list[str], scores: dict[int, np.ndarray]
) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """The window table with ``label`` and one probability column per class, and the probabilities (classes x
    windows; NaN for a window without a score: skipped)."""
    probabilities = np.full((len(windows), len(names)), np.nan, dtype=np.float32)
    if scores:
        probabilities[list(scores)] = np.stack(list(scores.values()))
    windows = windows.copy()
    windows["label"] = [names[scores[k].argmax()] if k in scores else None for k in range(len(windows))]
    for name, column in zip(names, probabilities.T, strict=True):
        windows[name] = column
    return windows, probabilities.T


def write_map(scene_map: SceneMap, path: str) -> None:
    """A float32 COG: one band per class (probability), then the argmax class index; NaN/-1 where skipped."""
    classes, rows, cols = scene_map.probabilities.shape
    bands = np.concatenate([scene_map.probabilities, scene_map.label[None].astype(np.float32)])
    bands[-1][scene_map.label < 0] = np.nan
    profile = {
        "driver": "COG",
        "width": cols,
        "height": rows,
        "count": classes + 1,
        "dtype": "float32",
        "crs": scene_map.crs,
        "transform": scene_map.transform,
        "nodata": np.nan,
        "compress": "deflate",
    }

    def write(tmp: str) -> None:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(bands)
            for i, name in enumerate([*scene_map.classes, "label"], start=1):
                dst.set_band_description(i, name)
            dst.update_tags(
                classes="|".join(scene_map.classes), label_band=str(classes + 1), **scene_map.made_with
            )

    atomic_write(path, write)
