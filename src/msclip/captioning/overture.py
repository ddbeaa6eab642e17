"""Overture Maps features around chips: GeoParquet (local extract or the public release) + a shapely STRtree.

Why pyarrow + shapely and not DuckDB: DuckDB's spatial extension is downloaded at run time, which fails
offline and on locked-down clusters; pyarrow reads the same GeoParquet (locally or from S3, with the
``bbox`` column as a pushed-down filter) and shapely's STRtree answers every chip's query with a bounding-box
pre-filter and an exact intersection, so millions of chips never rescan the data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from msclip.errors import MSClipError

#: The release the paper's captions were built from (older releases leave the bucket after some months).
OVERTURE_RELEASE = "2024-03-12-alpha.0"
OVERTURE_BUCKET = "overturemaps-us-west-2/release"
OVERTURE_REGION = "us-west-2"
#: Feature type -> Overture theme, for the types the pipeline reads.
THEMES = {
    "land": "base",
    "land_use": "base",
    "water": "base",
    "infrastructure": "base",
    "place": "places",
    "building": "buildings",
}
#: Words too generic to count as a "class absent from the tags" in the hallucination check.
GENERIC_WORDS = frozenset({"land", "physical", "unknown", "other", "place"})

_TYPE_IN_PATH = re.compile(r"type=(\w+)")


@dataclass
class ChipTags:
    """What Overture says lies on one chip; every list is de-duplicated and ordered by area, then length, then count."""

    classes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


class OvertureIndex:
    """Overture features (WGS84) in an STRtree; ``tags(footprints)`` is the whole tag step for a batch of chips."""

    def __init__(self, features: pd.DataFrame):
        """``features``: columns geometry (shapely), type, class, subtype, name (None where unknown)."""
        features = features[~shapely.is_missing(features["geometry"].to_numpy())]
        features = features[~shapely.is_empty(features["geometry"].to_numpy())].reset_index(drop=True)
        self.features = features
        self._geometry = features["geometry"].to_numpy()
        self._dims = shapely.get_dimensions(self._geometry)
        self._tree = shapely.STRtree(self._geometry)

    def __len__(self) -> int:
        return len(self.features)

    @classmethod
    def from_parquet(
        cls,
        sources: Iterable[str | Path],
        types: Sequence[str] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
    ) -> OvertureIndex:
        """Index local GeoParquet files or folders of them (an Overture extract of any release after 2024-03).

        A file's feature type comes from its ``type`` column, a ``type=...`` folder in its path, or its name
        (``land_use.parquet``); ``types`` keeps only those types; ``bbox`` (lon/lat) drops features outside it.
        """
        files = [f for source in sources for f in _parquet_files(Path(source))]
        if not files:
            raise MSClipError(f"no GeoParquet files in {', '.join(map(str, sources))}")
        tables = [_read_features(str(f), _type_from_path(str(f)), bbox) for f in files]
        return cls(_select_types(pd.concat(tables, ignore_index=True), types))

    @classmethod
    def from_release(
        cls,
        bbox: tuple[float, float, float, float],
        release: str = OVERTURE_RELEASE,
        types: Sequence[str] = tuple(THEMES),
    ) -> OvertureIndex:
        """Index the public release on S3 (anonymous) within ``bbox`` (lon/lat), read with pyarrow's filter on
        Overture's ``bbox`` column so only matching row groups are fetched."""
        from pyarrow import fs

        s3 = fs.S3FileSystem(anonymous=True, region=OVERTURE_REGION)
        tables = []
        for kind in types:
            if kind not in THEMES:
                raise MSClipError(f"unknown Overture type {kind!r}; known: {', '.join(THEMES)}")
            path = f"{OVERTURE_BUCKET}/{release}/theme={THEMES[kind]}/type={kind}/"
            try:
                tables.append(_read_features(path, kind, bbox, filesystem=s3))
            except OSError as exc:
                raise MSClipError(f"cannot read Overture {release} {kind} from s3://{path}: {exc}") from exc
        return cls(pd.concat(tables, ignore_index=True))

    @property
    def vocabulary(self) -> set[str]:
        """Every class and subtype word of the extract (readable), for the hallucination check."""
        words = pd.concat([self.features["class"], self.features["subtype"]]).dropna().unique()
        return {w for w in words if w not in GENERIC_WORDS}

    def tags(self, footprints: Sequence[shapely.Geometry]) -> list[ChipTags]:
        """Classes, tags and names of the features intersecting each footprint (WGS84 polygons)."""
        shapes = np.asarray(footprints, dtype=object)
        chip, feature = self._tree.query(shapes, predicate="intersects")
        result = [ChipTags() for _ in range(len(shapes))]
        if not len(chip):
            return result
        area, length = _overlap(self._geometry[feature], self._dims[feature], shapes[chip])
        hits = self.features.iloc[feature][["class", "subtype", "name"]].reset_index(drop=True)
        hits["chip"] = chip
        hits["feature"] = feature
        hits["area"] = area
        hits["length"] = length
        hits["count"] = 1
        tags = pd.concat([hits.assign(label=hits["subtype"]), hits.assign(label=hits["class"])])
        labelled = hits[hits["name"].notna()]
        names = labelled.assign(label=labelled["name"] + (" (" + labelled["class"] + ")").fillna(""))
        for column, rows in (("classes", hits.assign(label=hits["class"])), ("tags", tags), ("names", names)):
            for index, labels in _ranked(rows).items():
                setattr(result[index], column, labels)
        return result


def _overlap(geometry: np.ndarray, dims: np.ndarray, footprint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of each footprint a polygon covers, and the length of each line inside it.

    The exact (slow) intersection is computed only for features that cross the footprint's edge: points need
    none, features inside it count whole, and a polygon covering the whole footprint covers all of it.
    """
    shapely.prepare(footprint)
    inside = shapely.covers(footprint, geometry)
    crossing = (dims > 0) & ~inside
    covering = crossing & (dims == 2) & shapely.covers(geometry, footprint)
    crossing &= ~covering
    parts = geometry.copy()
    parts[crossing] = shapely.intersection(geometry[crossing], footprint[crossing])
    area = np.where(dims == 2, shapely.area(parts) / shapely.area(footprint), 0.0)
    area[covering] = 1.0
    length = np.where(dims == 1, shapely.length(parts), 0.0)
    return area, length


def _ranked(hits: pd.DataFrame) -> dict[int, list[str]]:
    """Per chip, its distinct labels ordered by total area, then length, then number of features."""
    hits = hits[hits["label"].notna()].drop_duplicates(["chip", "feature", "label"])
    if hits.empty:  # e.g. no feature of the batch has a name
        return {}
    totals = hits.groupby(["chip", "label"], sort=False)[["area", "length", "count"]].sum().reset_index()
    totals = totals.sort_values(
        ["chip", "area", "length", "count", "label"], ascending=[True, False, False, False, True]
    )
    chips = totals["chip"].to_numpy()
    starts = np.flatnonzero(np.r_[True, chips[1:] != chips[:-1]])
    groups = np.split(totals["label"].to_numpy(), starts[1:])
    return {int(chips[start]): group.tolist() for start, group in zip(starts, groups, strict=True)}


def _parquet_files(source: Path) -> list[Path]:
    if source.is_dir():
        return sorted(
            p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in {".parquet", ".geoparquet"}
        )
    if source.is_file():
        return [source]
    raise MSClipError(f"Overture extract not found: {source}")


def _type_from_path(path: str) -> str | None:
    match = _TYPE_IN_PATH.search(path)
    if match:
        return match.group(1)
    stem = Path(path).stem
    return stem if stem in THEMES else None


def _read_features(path: str, kind: str | None, bbox=None, filesystem=None) -> pd.DataFrame:
    """One file or folder of one feature type as flat columns: geometry, type, class, subtype, name."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet", filesystem=filesystem)
    schema = dataset.schema
    if "geometry" not in schema.names:
        raise MSClipError(f"{path}: no 'geometry' column, not an Overture GeoParquet file")
    columns = {"geometry": ds.field("geometry")}
    for name in ("type", "class", "subtype"):
        if name in schema.names:
            columns[name] = ds.field(name)
    for name, source in (("name", "names"), ("category", "categories")):
        kind_of = schema.field(source).type if source in schema.names else None
        if kind_of is not None and pa.types.is_struct(kind_of):  # a file of only nulls has no struct
            keys = {f.name for f in kind_of}
            key = "primary" if "primary" in keys else "main"  # categories.main before 2024
            if key in keys:
                columns[name] = ds.field(source, key)
    table = dataset.to_table(columns=columns, filter=_bbox_filter(schema, bbox)).to_pandas()
    return _normalise(table, kind, bbox)


def _bbox_filter(schema, bbox):
    """Overture's ``bbox`` struct as a pushed-down row filter (xmin/... since 2024-04, minx/... before)."""
    import pyarrow.dataset as ds

    if bbox is None or "bbox" not in schema.names:
        return None
    fields = {f.name for f in schema.field("bbox").type}
    lo_x, hi_x, lo_y, hi_y = (
        ("xmin", "xmax", "ymin", "ymax") if "xmin" in fields else ("minx", "maxx", "miny", "maxy")
    )
    minx, miny, maxx, maxy = bbox
    return (
        (ds.field("bbox", lo_x) <= maxx)
        & (ds.field("bbox", hi_x) >= minx)
        & (ds.field("bbox", lo_y) <= maxy)
        & (ds.field("bbox", hi_y) >= miny)
    )


def _normalise(table: pd.DataFrame, kind: str | None, bbox) -> pd.DataFrame:
    """Readable labels: places take their primary category as class, buildings without one are 'building'."""
    out = pd.DataFrame({"geometry": shapely.from_wkb(table["geometry"].to_numpy())})
    out["type"] = table["type"].to_numpy() if "type" in table else kind
    for column in ("class", "subtype", "name", "category"):
        out[column] = table[column].to_numpy() if column in table else None
    out["class"] = out["class"].fillna(out.pop("category"))
    out.loc[out["type"].eq("building"), "class"] = out["class"].fillna("building")
    out["class"] = out["class"].fillna(out["subtype"])
    for column in ("class", "subtype"):
        out[column] = out[column].str.replace("_", " ", regex=False)
    if bbox is not None:
        out = out[shapely.intersects(out["geometry"].to_numpy(), shapely.box(*bbox))]
    return out.astype({"class": object, "subtype": object, "name": object})


def _select_types(features: pd.DataFrame, types: Sequence[str] | None) -> pd.DataFrame:
    if not types:
        return features
    return features[features["type"].isin(types) | features["type"].isna()].reset_index(drop=True)
