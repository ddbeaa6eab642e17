"""Scene class maps (what ``msclip map`` writes) for the page: found in a folder, drawn as coloured pictures in
Web Mercator (the map library's projection, so a picture stretched between its corners lies where it should),
and read back per window.

A map is known by an id the server made (the file's stem), never by a path from the page.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio import Affine
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform
from rasterio.windows import Window

from msclip.data import InputOptions
from msclip.errors import MSClipError

MERCATOR = "EPSG:3857"
WGS84 = "EPSG:4326"
#: The overlay picture's longest side: map pixels (one per window) are blown up to it, nearest neighbour.
OVERLAY_PX = 1024
#: Class colours, class i gets colour i (matplotlib's tab10, then tab20's lighter halves); more classes
#: cycle through hues. The legend and the overlay both come from :func:`class_colour`.
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
    "#dbdb8d", "#9edae5",
]  # fmt: skip


def class_colour(i: int) -> str:
    if i < len(PALETTE):
        return PALETTE[i]
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.9)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@dataclass
class SceneMapFile:
    """One class map: its COG, the window footprints beside it, its classes and the scene it was made from."""

    id: str
    path: Path
    classes: list[str]
    footprints: Path | None = None
    extra: dict = field(default_factory=dict)  # e.g. {"adapted_from": id} for maps the app made

    @property
    def label_band(self) -> int:
        return len(self.classes) + 1

    @cached_property
    def made_with(self) -> dict[str, str]:
        """How ``msclip map`` made the map (COG tags window_size, stride, min_valid, max_cloud and
        weights_sha256); empty for maps that predate the tags."""
        keys = ("window_size", "stride", "min_valid", "max_cloud", "weights_sha256")
        with rasterio.open(self.path) as src:
            tags = src.tags()
        return {key: tags[key] for key in keys if key in tags}

    @property
    def window_filters(self) -> tuple[float, float]:
        """(min_valid, max_cloud) the windows were kept by; the defaults for maps without the tags."""
        from msclip.scenes.embed import WindowOptions

        settings = self.made_with
        try:
            return float(settings["min_valid"]), float(settings["max_cloud"])
        except (KeyError, ValueError):
            return WindowOptions.min_valid, WindowOptions.max_cloud

    def stored_embeddings(self, model) -> list | None:
        """The windows' embeddings kept in the footprints (None where skipped), when ``model`` made them (same
        name, and same weights when the map records them); None when the footprints hold none (older maps)
        or another model's."""
        from msclip.models.checkpoint import checkpoint_sha256

        windows = self.windows
        if windows is None or "embedding" not in windows or windows.attrs.get("model") != model.spec.name:
            return None
        weights = self.made_with.get("weights_sha256")
        if weights and weights != checkpoint_sha256(model.checkpoint):
            return None
        return list(windows["embedding"])

    @cached_property
    def grid(self) -> tuple[Affine, int, int, str]:
        """(transform, width, height, crs) of the map."""
        with rasterio.open(self.path) as src:
            return src.transform, src.width, src.height, src.crs.to_string()

    @cached_property
    def mercator(self) -> tuple[Affine, int, int]:
        """The overlay's grid in Web Mercator, scaled up so that its longest side is about OVERLAY_PX."""
        src_transform, width, height, crs = self.grid
        west, north = src_transform * (0, 0)
        east, south = src_transform * (width, height)
        dst, w, h = calculate_default_transform(
            crs,
            MERCATOR,
            width,
            height,
            min(west, east),
            min(south, north),
            max(west, east),
            max(south, north),
        )
        factor = max(1, OVERLAY_PX // max(w, h))
        return dst * Affine.scale(1 / factor), w * factor, h * factor

    @cached_property
    def bounds(self) -> list[float]:
        """[west, south, east, north] in degrees of the overlay picture."""
        dst, w, h = self.mercator
        x0, y0 = dst * (0, 0)
        x1, y1 = dst * (w, h)
        lons, lats = transform(MERCATOR, WGS84, [x0, x1], [y1, y0])
        return [lons[0], lats[0], lons[1], lats[1]]

    @cached_property
    def windows(self):
        """Window footprints (GeoParquet written by ``msclip map``), or None when they are not beside the map."""
        if self.footprints is None:
            return None
        import geopandas as gpd
        import pyarrow.parquet as pq

        from msclip.index.tables import model_name_of

        table = gpd.read_parquet(self.footprints)
        table.attrs["model"] = model_name_of(pq.read_schema(self.footprints))
        return table

    @property
    def scene(self) -> str | None:
        """Where the mapped scene was read from (recorded in the footprints), to embed its windows."""
        windows = self.windows
        return None if windows is None or not len(windows) else str(windows["image"].iloc[0])

    def describe(self) -> dict:
        counts = {}
        if self.windows is not None and "label" in self.windows:
            counts = self.windows["label"].value_counts().to_dict()
        return {
            "id": self.id,
            "name": self.path.name,
            "classes": self.classes,
            "colours": [class_colour(i) for i in range(len(self.classes))],
            "bounds": self.bounds,
            "overlay": f"/api/maps/{self.id}/overlay.png",
            "windows": {name: int(counts.get(name, 0)) for name in self.classes},
            **self.extra,
        }

    def overlay_png(self) -> bytes:
        """The argmax class of every window as an RGBA picture on the Mercator grid (transparent: skipped)."""
        from PIL import Image

        src_transform, _, _, crs = self.grid
        dst_transform, w, h = self.mercator
        with rasterio.open(self.path) as src:
            label = src.read(self.label_band)
        drawn = np.full((h, w), np.nan, dtype=np.float32)
        reproject(
            label,
            drawn,
            src_transform=src_transform,
            src_crs=crs,
            dst_transform=dst_transform,
            dst_crs=MERCATOR,
            src_nodata=np.nan,
            dst_nodata=np.nan,
            resampling=Resampling.nearest,
        )
        colours = np.array([_rgb(class_colour(i)) for i in range(len(self.classes))], dtype=np.uint8)
        rgba = np.zeros((h, w, 4), dtype=np.uint8)
        mapped = ~np.isnan(drawn)
        rgba[mapped, :3] = colours[drawn[mapped].astype(int)]
        rgba[mapped, 3] = 255
        buffer = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
        return buffer.getvalue()

    def at(self, lon: float, lat: float) -> dict | None:
        """The window whose map pixel holds (lon, lat): number, probabilities, label, footprint; None when
        the point is off the map or its window was skipped (nodata, cloud)."""
        src_transform, width, height, crs = self.grid
        xs, ys = transform(WGS84, crs, [lon], [lat])
        col, row = (~src_transform) * (xs[0], ys[0])
        row, col = int(np.floor(row)), int(np.floor(col))
        if not (0 <= row < height and 0 <= col < width):
            return None
        with rasterio.open(self.path) as src:
            values = src.read(window=Window(col, row, 1, 1))[:, 0, 0]
        if np.isnan(values[-1]):
            return None
        k = row * width + col
        return {
            "window": k,
            "row": row,
            "col": col,
            "label": self.classes[int(values[-1])],
            "probabilities": [float(v) for v in values[:-1]],
            "geometry": self._footprint(k),
        }

    def _footprint(self, k: int) -> dict | None:
        windows = self.windows
        if windows is None or not 0 <= k < len(windows):
            return None
        from shapely.geometry import mapping

        return mapping(windows.geometry.iloc[[k]].to_crs(WGS84).iloc[0])


def find_maps(folder: str) -> dict[str, SceneMapFile]:
    """Every class map (GeoTIFF tagged by ``msclip map``) directly in ``folder``, by id; an error in one line
    when the folder is missing or holds none."""
    root = Path(folder)
    if not root.is_dir():
        raise MSClipError(f"--maps {folder}: no such folder")
    found: dict[str, SceneMapFile] = {}
    for path in sorted(p for p in root.iterdir() if p.suffix.lower() in {".tif", ".tiff"}):
        classes = _map_classes(path)
        if classes is None:
            continue
        footprints = path.with_suffix(".parquet")
        found[path.stem] = SceneMapFile(
            path.stem, path, classes, footprints if footprints.is_file() else None
        )
    if not found:
        raise MSClipError(
            f"--maps {folder}: no class maps here (make them with msclip map ... --output DIR/x.tif)"
        )
    return found


def _map_classes(path: Path) -> list[str] | None:
    """The classes of a map ``msclip map`` wrote; None for any other GeoTIFF (or a file that is not one)."""
    try:
        with rasterio.open(path) as src:
            tags = src.tags()
            count, has_crs = src.count, src.crs is not None
    except rasterio.errors.RasterioError:
        return None
    classes = tags.get("classes", "").split("|")
    if not has_crs or not tags.get("classes") or tags.get("label_band") != str(len(classes) + 1):
        return None
    return classes if count == len(classes) + 1 else None


def _scene_of(model, scene_map: SceneMapFile):
    """(scene, stride) the map was made from, checked against ``model``'s window size."""
    from msclip.scenes import open_scene

    if scene_map.scene is None:
        raise MSClipError(f"{scene_map.path.name}: no window footprints beside the map, so no scene to read")
    try:
        scene = open_scene(scene_map.scene)
    except MSClipError as exc:
        raise MSClipError(f"{scene_map.path.name}: cannot read the scene it was made from ({exc})") from None
    src_transform, width, height, _ = scene_map.grid
    stride = round(abs(src_transform.a) / scene.resolution)
    size = model.spec.image_size
    if stride <= 0 or ((scene.height - size) // stride + 1, (scene.width - size) // stride + 1) != (
        height,
        width,
    ):
        raise MSClipError(f"{scene_map.path.name}: made with another window size than {model.spec.name}'s")
    return scene, stride


def window_embedding(model, scene_map: SceneMapFile, k: int, options: InputOptions):
    """The embedding of window ``k`` of the mapped scene, read and prepared as ``msclip map`` did (the scene's
    BOA offset decided once, the map's window size and stride); the one kept in the footprints when there is."""
    stored = scene_map.stored_embeddings(model)
    if stored is not None and 0 <= k < len(stored) and stored[k] is not None:
        return torch.tensor(np.asarray(stored[k]), dtype=torch.float32)
    from msclip.data import SourceDataset
    from msclip.scenes.embed import ForWindow, WindowOptions, WindowSources, scene_offset
    from msclip.scenes.windows import WindowGrid

    scene, stride = _scene_of(model, scene_map)
    _, width, height, _ = scene_map.grid
    if not 0 <= k < width * height:
        raise MSClipError(f"{scene_map.path.name} has no window {k}")
    decided = replace(options, boa_offset=scene_offset(scene, options).offset)
    every_window = WindowOptions(stride=stride, min_valid=0.0, max_cloud=1.0)
    grid = WindowGrid(model.spec.image_size, stride, height, width)
    sources = WindowSources(scene, grid, model.bands)
    try:
        item = SourceDataset(sources, ForWindow(model.bands, model.transform, decided, every_window))[k]
    finally:
        sources.reader.close()
    if "error" in item:
        raise MSClipError(f"{scene_map.path.name}: window {k} cannot be read ({item['error']})")
    return model.encode_image(item["image"][None])[0]


def remap(model, source: SceneMapFile, head, folder: Path) -> SceneMapFile:
    """The scene of ``source`` mapped again with ``head`` (same windows, kept by the same filters), written
    into ``folder``: scored from the embeddings kept in its footprints when it has them (a second), else
    read and embedded again."""
    from msclip.scenes import write_geoparquet, write_map

    result = _rescored(model, source, head) or _mapped_again(model, source, head)
    map_id = f"{source.id}-adapted-{uuid.uuid4().hex[:6]}"
    path = folder / f"{map_id}.tif"
    write_map(result, str(path))
    write_geoparquet(result.windows, str(path.with_suffix(".parquet")), model)
    return SceneMapFile(
        map_id, path, list(result.classes), path.with_suffix(".parquet"), {"adapted_from": source.id}
    )


def _rescored(model, source: SceneMapFile, head):
    """The map of ``source``'s windows scored by ``head`` from their stored embeddings; None without them."""
    from msclip.scenes.mapping import SceneMap, scored_windows
    from msclip.zeroshot import class_scorer

    stored = source.stored_embeddings(model)
    if stored is None:
        return None
    names, score = class_scorer(model, None, "msclip", True, head)
    kept = [k for k, vector in enumerate(stored) if vector is not None]
    scores = {}
    if kept:
        features = torch.tensor(np.stack([np.asarray(stored[k]) for k in kept]), dtype=torch.float32)
        scores = dict(zip(kept, score(features).numpy(), strict=True))
    base = source.windows.drop(columns=["label", *source.classes, "embedding"], errors="ignore")
    windows, probabilities = scored_windows(base, names, scores)
    windows["embedding"] = stored
    transform_, width, height, crs = source.grid
    shaped = probabilities.reshape(len(names), height, width)
    return SceneMap(names, shaped, transform_, crs, windows, source.made_with)


def _mapped_again(model, source: SceneMapFile, head):
    """The scene of ``source`` read, embedded and scored by ``head`` again (maps without stored embeddings)."""
    from msclip.scenes import map_scene
    from msclip.scenes.embed import WindowOptions

    scene, stride = _scene_of(model, source)
    return map_scene(
        model, scene, head=head, windows=WindowOptions(stride, *source.window_filters), workers=0
    )
