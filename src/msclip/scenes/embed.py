"""Embed every window of a scene: read (windowed), skip nodata/cloud, prepare, transform, encode.

Windows stream through a DataLoader, so reading and preparing the next batch overlaps the model's
forward pass when workers are used; memory is bounded by the batch, whatever the scene size.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from msclip.data import (
    VISIBLE_BANDS,
    InputOptions,
    OffsetDecision,
    SourceDataset,
    below_offset_share,
    collate_records,
    decide_boa_offset,
    prepare,
    valid_mask,
    warn_offset_decisions,
)
from msclip.io import atomic_write, with_msclip_record
from msclip.models import MSClipModel
from msclip.runtime import prefetch
from msclip.scenes.source import SCL_CLOUD, SCL_INVALID, Scene, SceneReader
from msclip.scenes.windows import WindowGrid, window_grid
from msclip.sources import SceneWindow


@dataclass(frozen=True)
class WindowOptions:
    """How a scene is cut and which windows are kept."""

    stride: int | None = None  # default: the model's chip size (no overlap)
    min_valid: float = 0.5  # skip windows with less valid (not nodata) data than this
    max_cloud: float = 0.5  # skip windows where SCL marks more of the valid pixels as cloud/shadow


@dataclass
class WindowBatch:
    """Embeddings of the kept windows of a batch, and the status of every window in it."""

    kept: list[int]  # window numbers, in the order of ``embeddings``
    embeddings: torch.Tensor
    filled: list[float]
    status: dict[int, str]  # window number -> "ok", "nodata", "cloud" or an error message
    cloud: dict[int, float]


class WindowSources(Sequence):
    """The windows of a scene as :class:`msclip.sources.SceneWindow` sources, made when asked for; one reader
    (it reopens its files in each DataLoader worker)."""

    def __init__(self, scene: Scene, grid: WindowGrid, bands: tuple[str, ...]):
        self.reader = SceneReader(scene)
        self.grid = grid
        self.bands = bands

    def __len__(self) -> int:
        return len(self.grid)

    def __getitem__(self, k):
        return SceneWindow(self.reader, k, self.grid.window(k), self.bands)


@dataclass(frozen=True)
class ForWindow:
    """A window as the model takes it, or a skip record (``nodata``, ``cloud``) with its cloud share."""

    bands: tuple[str, ...]
    transform: Callable
    options: InputOptions
    windows: WindowOptions

    def __call__(self, source: SceneWindow) -> dict:
        raster = source.read()
        valid = valid_mask(raster.array, raster.nodata)
        scl = source.read_scl()
        cloud = 0.0
        if scl is not None:
            valid &= ~np.isin(scl, SCL_INVALID)
            cloud = float((np.isin(scl, SCL_CLOUD) & valid).sum() / max(valid.sum(), 1))
        if valid.mean() < self.windows.min_valid:
            return {"error": "nodata", "cloud": cloud}
        if cloud > self.windows.max_cloud:
            return {"error": "cloud", "cloud": cloud}
        array, filled = prepare(raster, self.bands, self.options)
        return {"image": self.transform(array), "filled": filled, "cloud": cloud}


def _window_batch(batch: dict, embeddings: torch.Tensor) -> WindowBatch:
    """A collated batch of window records (:func:`msclip.data.collate_records`) as kept windows and statuses;
    a window that failed to read has its one-line reason as status and no cloud share."""
    status = dict.fromkeys(batch["index"], "ok")
    cloud = dict(zip(batch["index"], batch.get("cloud", []), strict=True))
    for failed in batch["failed"]:
        status[failed["index"]] = failed["error"]
        cloud[failed["index"]] = failed.get("cloud", float("nan"))
    return WindowBatch(batch["index"], embeddings, batch.get("filled", []), status, cloud)


def embed_windows(
    model: MSClipModel,
    scene: Scene,
    options: InputOptions | None = None,
    windows: WindowOptions | None = None,
    batch_size: int = 32,
    workers: int = 0,
    progress: bool = False,
) -> tuple[WindowGrid, Iterator[WindowBatch]]:
    """The scene's window grid, and its windows' embeddings batch by batch in row-major order."""
    windows = windows or WindowOptions()
    scene.require(model.bands)
    grid = window_grid(scene, model.spec.image_size, windows.stride)
    sources = WindowSources(scene, grid, model.bands)
    prepare_window = ForWindow(model.bands, model.transform, options or InputOptions(), windows)
    loader = DataLoader(
        SourceDataset(sources, prepare_window),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_records,
        pin_memory=model.device.startswith("cuda"),
    )

    def read() -> Iterator[dict]:
        """The windows, then the reader closed by the thread that opened it (GDAL environments are per thread)."""
        try:
            yield from loader
        finally:
            sources.reader.close()

    def batches() -> Iterator[WindowBatch]:
        with tqdm(total=len(grid), unit="win", disable=not progress, desc=scene.name[-40:]) as bar:
            for batch in prefetch(read()) if workers == 0 else read():
                embeddings = (
                    model.encode_image(batch["image"]) if batch["image"] is not None else torch.empty(0)
                )
                yield _window_batch(batch, embeddings)
                bar.update(len(batch["index"]) + len(batch["failed"]))

    return grid, batches()


def window_table(scene: Scene, grid: WindowGrid) -> gpd.GeoDataFrame:
    """One row per window: scene, window offsets, acquisition time, footprint (scene CRS)."""
    rows, cols = np.divmod(np.arange(len(grid)), grid.cols)
    table = gpd.GeoDataFrame(
        {
            "image": scene.name,
            "window": [f"{r * grid.stride}:{c * grid.stride}" for r, c in zip(rows, cols, strict=True)],
            "row": rows * grid.stride,
            "col": cols * grid.stride,
            "datetime": scene.datetime,
        },
        geometry=grid.footprints(scene),
        crs=scene.crs,
    )
    table["datetime"] = table["datetime"].astype("datetime64[ns, UTC]")
    return table


def scene_offset(scene: Scene, options: InputOptions) -> OffsetDecision:
    """One offset decision for a whole scene (one product has one offset), its data checked on an overview.

    Deciding per window would subtract from bright windows and not from dark ones of the same product.
    """

    def below_share() -> float | None:
        visible = tuple(b for b in VISIBLE_BANDS if b in scene.bands)
        if not visible:
            return None
        reader = SceneReader(scene)
        try:
            view = reader.overview(visible)
        except Exception:  # a damaged scene: its windows report what they cannot read; tags decide alone
            return None
        finally:
            reader.close()
        return below_offset_share(view, visible, valid_mask(view, scene.nodata))

    return decide_boa_offset(scene.tags, options.boa_offset, below_share)


def scan_scene(
    model: MSClipModel,
    scene: Scene,
    consume: Callable[[WindowBatch], None],
    options: InputOptions | None = None,
    **kwargs,
) -> tuple[WindowGrid, gpd.GeoDataFrame]:
    """Run every window through the model, handing each batch to ``consume``; the window table comes back
    with each window's ``status`` (ok, nodata, cloud or an error), ``cloud_fraction``, ``filled_fraction``,
    and the scene's ``boa_offset`` and ``boa_offset_source`` (decided once, see :func:`scene_offset`)."""
    options = options or InputOptions()
    offset = scene_offset(scene, options)
    warn_offset_decisions({scene.name: offset})
    grid, batches = embed_windows(model, scene, options=replace(options, boa_offset=offset.offset), **kwargs)
    status, cloud, filled = [""] * len(grid), np.full(len(grid), np.nan), np.full(len(grid), np.nan)
    for batch in batches:
        consume(batch)
        filled[batch.kept] = batch.filled
        for k, value in batch.status.items():
            status[k], cloud[k] = value, batch.cloud[k]
    table = window_table(scene, grid)
    table["status"], table["cloud_fraction"], table["filled_fraction"] = status, cloud, filled
    table["boa_offset"], table["boa_offset_source"] = offset.offset, offset.source
    return grid, table


def embed_scene(model: MSClipModel, scene: Scene, **kwargs) -> gpd.GeoDataFrame:
    """Window footprints (scene CRS) with embeddings (None where a window was skipped) and their status."""
    embeddings: dict[int, list[float]] = {}

    def keep(batch: WindowBatch) -> None:
        embeddings.update(zip(batch.kept, batch.embeddings.tolist(), strict=True))

    _, table = scan_scene(model, scene, keep, **kwargs)
    table["embedding"] = [embeddings.get(k) for k in range(len(table))]
    return table


def write_geoparquet(table: gpd.GeoDataFrame, path: str, model: MSClipModel | None = None) -> None:
    """GeoParquet, atomically, with the model's name recorded (so an index knows how to embed queries)."""
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    arrow = pq.read_table(io.BytesIO(buffer.getvalue()))
    if model is not None:
        arrow = with_msclip_record(arrow, model.record)
    atomic_write(path, lambda tmp: pq.write_table(arrow, tmp))
