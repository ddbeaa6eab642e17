"""Embedding tables (``msclip embed`` Parquet, chips or scene windows) -> vectors + search metadata.

Chip tables carry ``crs`` and ``bounds``; scene tables are GeoParquet with window footprints. Both
become one row per vector with a footprint in EPSG:4326, so filters and map views need no projection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from msclip.errors import MSClipError
from msclip.io import METADATA_KEY

WGS84 = "EPSG:4326"


@dataclass
class EmbeddingTable:
    """Unit vectors (N, D) float32 and their metadata rows (image, geometry in EPSG:4326, datetime)."""

    vectors: np.ndarray
    rows: gpd.GeoDataFrame
    model_name: str | None


def read_embeddings(path: str | Path) -> EmbeddingTable:
    """Read one embedding file; rows without an embedding (skipped windows) are left out."""
    path = str(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise MSClipError(f"{path}: not a readable Parquet file ({exc})") from exc
    if "embedding" not in table.column_names:
        raise MSClipError(f"{path}: no 'embedding' column; make it with `msclip embed`")
    keep = pa.compute.is_valid(table["embedding"])
    table = table.filter(keep)
    vectors = _vectors(table["embedding"], path)
    frame = table.drop_columns(["embedding"]).to_pandas()
    rows = gpd.GeoDataFrame(
        {
            "image": frame["image"].astype(str) if "image" in frame else path,
            "window": frame["window"].astype(str) if "window" in frame else None,
            "datetime": _datetimes(frame),
        },
        geometry=_footprints(path, table, frame, keep.to_numpy(zero_copy_only=False)),
        crs=WGS84,
    )
    return EmbeddingTable(vectors, rows, model_name_of(table.schema))


def model_name_of(schema: pa.Schema) -> str | None:
    """The model recorded in a table's metadata by msclip, if any."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw).get("model") if raw else None


def _datetimes(frame: pd.DataFrame) -> pd.Series:
    """Acquisition times in UTC; NaT where the table has none."""
    if "datetime" in frame:
        return pd.to_datetime(frame["datetime"], utc=True).astype("datetime64[ns, UTC]")
    return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")


def _vectors(column: pa.ChunkedArray, path: str) -> np.ndarray:
    if len(column) == 0:
        return np.zeros((0, 0), np.float32)
    flat = column.combine_chunks()
    lengths = pa.compute.list_value_length(flat).to_numpy()
    if lengths.min() != lengths.max():
        raise MSClipError(f"{path}: embeddings of different lengths ({lengths.min()} and {lengths.max()})")
    vectors = flat.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(flat), -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)  # search assumes unit vectors, whatever wrote the file


def _footprints(path: str, table: pa.Table, frame: pd.DataFrame, keep: np.ndarray) -> gpd.GeoSeries:
    """Footprints in EPSG:4326: the GeoParquet geometry, else boxes from ``bounds`` in each row's ``crs``."""
    if "geometry" in frame and b"geo" in (table.schema.metadata or {}):
        geometry = gpd.read_parquet(path, columns=["geometry"]).geometry[keep]
        return geometry.to_crs(WGS84).set_axis(frame.index)
    out = gpd.GeoSeries([None] * len(frame), crs=WGS84, index=frame.index)
    if "bounds" not in frame or "crs" not in frame:
        return out
    has = frame["crs"].notna() & frame["bounds"].notna()
    for crs, group in frame[has].groupby("crs"):
        boxes = shapely.box(*np.stack(group["bounds"].map(list).tolist()).T)
        out.loc[group.index] = gpd.GeoSeries(boxes, crs=crs, index=group.index).to_crs(WGS84)
    return out
