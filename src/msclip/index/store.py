"""A FAISS index of image embeddings with its metadata beside it, in one folder.

Folder layout: ``vectors.faiss`` (the FAISS index; vector ids are row numbers), ``metadata.parquet``
(GeoParquet, EPSG:4326: id, image, window, datetime, geometry, source) and ``index.json`` (kind, dimension,
model, the embedding files already in it). Exact search (``IndexFlatIP``) for small collections, an
inverted file (``IndexIVFFlat``) for large ones, HNSW on request.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import faiss
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from msclip.errors import MSClipError
from msclip.index.tables import WGS84, EmbeddingTable, read_embeddings
from msclip.io import atomic_write

KINDS = ("auto", "flat", "ivf", "hnsw")
#: Up to this many vectors ``auto`` picks exact search: fast enough (tens of ms per query) and no recall loss.
EXACT_LIMIT = 50_000
#: An automatically chosen IVF index is retrained on `add` once it holds this many times its training set.
IVF_REGROWTH = 4
#: Filtered searches that keep at most this many vectors are answered exactly over just those vectors.
SUBSET_LIMIT = 50_000
HNSW_M = 32
FORMAT = 1

INDEX_FILE, METADATA_FILE, MANIFEST_FILE = "vectors.faiss", "metadata.parquet", "index.json"
RESULT_COLUMNS = ["query_id", "rank", "score", "id", "image", "geometry", "datetime"]


def build_index(embedding_files: list[str], output_dir: str, kind: str = "auto") -> str:
    """Build an index of the embeddings in ``embedding_files`` into ``output_dir`` (replacing one there)."""
    if kind not in KINDS:
        raise MSClipError(f"unknown index kind {kind!r}; use {', '.join(KINDS)}")
    files = _unique_files(embedding_files)
    tables = [read_embeddings(f) for f in files]
    vectors, rows, model_name = _combine(tables, files)
    index, manifest = _filled_index(kind, vectors)
    manifest = {"format": FORMAT, "dim": int(vectors.shape[1]), "model": model_name, **manifest}
    _save(Path(output_dir), index, rows, manifest, files)
    return str(output_dir)


def _filled_index(kind: str, vectors: np.ndarray) -> tuple[faiss.Index, dict]:
    """An index of ``kind`` holding ``vectors``, and what the manifest records of it (auto: chosen by size)."""
    chosen = _auto_kind(len(vectors)) if kind == "auto" else kind
    index, settings = _new_index(chosen, vectors)
    index.add(vectors)
    return index, {"kind": chosen, "auto": kind == "auto", "trained_on": len(vectors), **settings}


def _auto_kind(count: int) -> str:
    return "flat" if count <= EXACT_LIMIT else "ivf"


def _outgrown(manifest: dict, total: int) -> bool:
    """An automatically chosen index that no longer suits its size: exact search past the exact limit, or
    IVF lists trained on under a quarter of the vectors they now hold."""
    if not manifest.get("auto"):
        return False
    if manifest["kind"] == "ivf":
        return total > IVF_REGROWTH * manifest.get("trained_on", total)
    return _auto_kind(total) != manifest["kind"]


def add_to_index(index_dir: str, embedding_files: list[str]) -> bool:
    """Append new embedding files to an index; files already in it are left out.

    The vectors are added to the index as it is, unless an automatically chosen index has outgrown its kind
    (see :func:`_outgrown`): then it is retrained on all vectors, read back from the index. Returns whether
    that happened.
    """
    folder = Path(index_dir)
    manifest = read_manifest(folder)
    files = [f for f in _unique_files(embedding_files) if f not in manifest["files"]]
    if not files:
        return False
    vectors, rows, model_name = _combine([read_embeddings(f) for f in files], files)
    if vectors.shape[1] != manifest["dim"]:
        raise MSClipError(f"embeddings have {vectors.shape[1]} dimensions, the index {manifest['dim']}")
    if model_name and manifest["model"] and model_name != manifest["model"]:
        raise MSClipError(f"embeddings come from {model_name}, the index from {manifest['model']}")
    index = faiss.read_index(str(folder / INDEX_FILE))
    old = gpd.read_parquet(folder / METADATA_FILE)
    rows["id"] = np.arange(len(old), len(old) + len(rows), dtype=np.int64)
    manifest["model"] = manifest["model"] or model_name
    rebuild = _outgrown(manifest, index.ntotal + len(vectors))
    if rebuild:
        if isinstance(index, faiss.IndexIVF):
            index.make_direct_map()
        everything = np.concatenate([index.reconstruct_n(0, index.ntotal), vectors])
        index, settings = _filled_index("auto", everything)
        manifest = {key: value for key, value in manifest.items() if key not in ("nlist", "nprobe")}
        manifest.update(settings)
    else:
        index.add(vectors)
    _save(folder, index, pd.concat([old, rows], ignore_index=True), manifest, manifest["files"] + files)
    return rebuild


def open_index(index_dir: str) -> EmbeddingIndex:
    """Open an index folder made by :func:`build_index`."""
    return EmbeddingIndex(index_dir)


class EmbeddingIndex:
    """Search image embeddings by vector, with optional bounding-box and date filters."""

    def __init__(self, index_dir: str):
        folder = Path(index_dir)
        self.manifest = read_manifest(folder)
        self.index = faiss.read_index(str(folder / INDEX_FILE))
        if isinstance(self.index, faiss.IndexIVF):
            self.index.make_direct_map()  # filtered searches read vectors back by id
        rows = gpd.read_parquet(folder / METADATA_FILE)
        if len(rows) != self.index.ntotal:
            raise MSClipError(
                f"{folder}: {len(rows)} metadata rows for {self.index.ntotal} vectors; rebuild it"
            )
        self._envelopes = shapely.bounds(rows.geometry.to_numpy())  # NaN for rows without a footprint
        self._times = rows["datetime"].to_numpy(dtype="datetime64[ns]")
        rows["datetime"] = _nullable(rows["datetime"])
        self.metadata: pd.DataFrame = rows
        self.model_name: str | None = self.manifest["model"]
        self.kind: str = self.manifest["kind"]
        self.dim: int = self.manifest["dim"]

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(
        self,
        queries: np.ndarray,
        top_k: int = 10,
        bbox: tuple[float, float, float, float] | None = None,
        start: str | None = None,
        end: str | None = None,
        nprobe: int | None = None,
    ) -> pd.DataFrame:
        """The ``top_k`` most similar vectors per query (rows of unit vectors), best first.

        ``bbox`` (min lon, min lat, max lon, max lat) keeps footprints that intersect it; ``start``/``end``
        (ISO dates, inclusive) keep rows dated in that range. ``nprobe`` overrides the IVF lists searched.
        """
        queries = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        self.check_queries(queries)
        keep = self._filter(bbox, start, end)
        k = min(top_k, len(self) if keep is None else int(keep.sum()))
        if k <= 0:
            return gpd.GeoDataFrame(columns=RESULT_COLUMNS, geometry="geometry", crs=WGS84)
        if keep is not None and keep.sum() <= SUBSET_LIMIT:
            scores, ids = self._search_subset(queries, np.flatnonzero(keep), k)
        else:
            params, _bitmap = self._params(keep, nprobe)  # the bitmap must outlive the search
            scores, ids = self.index.search(queries, k, params=params)
        return self._results(scores, ids)

    def check_queries(self, queries: np.ndarray, model: str | None = None) -> None:
        """Queries must be embeddings of the index's model; when they cannot be, say which models differ."""
        if queries.ndim == 2 and queries.shape[1] == self.dim:
            return
        given = (
            f"{model} gives {queries.shape[-1]}-dimension queries"
            if model
            else f"queries of shape {queries.shape}"
        )
        built = self.model_name or "a model it does not record"
        raise MSClipError(
            f"{given}, but the index holds {self.dim}-dimension embeddings of {built}: search with that model"
        )

    def _filter(self, bbox, start, end) -> np.ndarray | None:
        """Rows that pass the filters, or None when there are no filters."""
        if bbox is None and start is None and end is None:
            return None
        keep = np.ones(len(self), dtype=bool)
        if bbox is not None:
            minx, miny, maxx, maxy = bbox
            env = self._envelopes
            with np.errstate(invalid="ignore"):
                keep &= (env[:, 0] <= maxx) & (env[:, 2] >= minx) & (env[:, 1] <= maxy) & (env[:, 3] >= miny)
            candidates = np.flatnonzero(keep)  # envelopes overlap; the footprints themselves must too
            hits = shapely.intersects(self.metadata.geometry.to_numpy()[candidates], shapely.box(*bbox))
            keep[candidates[~hits]] = False
        if start is not None:
            keep &= self._times >= np.datetime64(_utc(start))
        if end is not None:
            bound = pd.Timestamp(_utc(end))
            if len(end) <= 10:  # a date: the whole day counts
                bound += pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
            keep &= self._times <= np.datetime64(bound)
        return keep

    def _search_subset(self, queries: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over a few selected vectors (a narrow filter would starve an approximate index)."""
        scores = queries @ self.index.reconstruct_batch(ids).T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, axis=1), ids[order]

    def _params(self, keep: np.ndarray | None, nprobe: int | None) -> tuple[object, np.ndarray | None]:
        """FAISS search parameters (lists probed, graph breadth, allowed ids) and the id bitmap they point to."""
        selector = bitmap = None
        if keep is not None:
            bitmap = np.packbits(keep, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(keep), faiss.swig_ptr(bitmap))
        if self.kind == "ivf":
            return faiss.SearchParametersIVF(sel=selector, nprobe=nprobe or self.manifest["nprobe"]), bitmap
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=self.manifest["ef_search"]), bitmap
        return (faiss.SearchParameters(sel=selector) if selector is not None else None), bitmap

    def _results(self, scores: np.ndarray, ids: np.ndarray) -> gpd.GeoDataFrame:
        query_id, rank = np.nonzero(ids >= 0)  # FAISS pads with -1 when it finds fewer than k
        found = ids[query_id, rank]
        rows = self.metadata.iloc[found]
        return gpd.GeoDataFrame(
            {
                "query_id": query_id,
                "rank": rank + 1,
                "score": scores[query_id, rank].astype(np.float32),
                "id": found,
                "image": rows["image"].to_numpy(),
                "geometry": rows.geometry.to_numpy(),
                "datetime": rows["datetime"].to_numpy(),
            },
            geometry="geometry",
            crs=WGS84,
        )


def _new_index(kind: str, vectors: np.ndarray) -> tuple[faiss.Index, dict]:
    """An empty index of ``kind`` (trained for IVF) and the search settings to record with it."""
    n, dim = vectors.shape
    if kind == "flat":
        return faiss.IndexFlatIP(dim), {}
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        return index, {"ef_search": 128}
    if kind != "ivf":
        raise MSClipError(f"unknown index kind {kind!r}; use {', '.join(KINDS)}")
    nlist = max(1, min(int(math.sqrt(n)), n // 39))  # FAISS wants >= 39 training points per list
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = vectors[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)]
    index.train(sample)
    return index, {"nlist": nlist, "nprobe": max(1, min(nlist, math.ceil(nlist / 16)))}


def _combine(
    tables: list[EmbeddingTable], files: list[str]
) -> tuple[np.ndarray, gpd.GeoDataFrame, str | None]:
    """One array of vectors and one metadata frame (ids 0..N-1, source file per row)."""
    pairs = [(t, f) for t, f in zip(tables, files, strict=True) if len(t.vectors)]
    if not pairs:
        raise MSClipError(f"no embeddings in {', '.join(files)}")
    dims = {t.vectors.shape[1] for t, _ in pairs}
    if len(dims) > 1:
        raise MSClipError(f"embedding files disagree on the dimension: {sorted(dims)}")
    models = {t.model_name for t, _ in pairs if t.model_name is not None}
    if len(models) > 1:
        raise MSClipError(f"embedding files come from different models: {', '.join(sorted(models))}")
    vectors = np.ascontiguousarray(np.concatenate([t.vectors for t, _ in pairs]), dtype=np.float32)
    rows = pd.concat([t.rows.assign(source=f) for t, f in pairs], ignore_index=True)
    rows.insert(0, "id", np.arange(len(rows), dtype=np.int64))
    return vectors, rows, models.pop() if models else None


def _save(folder: Path, index, rows: gpd.GeoDataFrame, manifest: dict, files: list[str]) -> None:
    """Write index, metadata, then manifest (each atomically; the manifest last says the set is whole)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / INDEX_FILE, lambda tmp: faiss.write_index(index, tmp))
    atomic_write(folder / METADATA_FILE, lambda tmp: rows.to_parquet(tmp, index=False))
    manifest = {**manifest, "count": int(index.ntotal), "files": files}
    atomic_write(folder / MANIFEST_FILE, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1)))


def read_manifest(index_dir: str | Path) -> dict:
    """An index's ``index.json`` (kind, dimension, model, count, files): cheap, unlike opening the index."""
    folder = Path(index_dir)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise MSClipError(
            f"{folder}: not an msclip index (no {MANIFEST_FILE}); make one with `msclip index build`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MSClipError(f"{path}: unreadable index manifest ({exc}); rebuild the index") from exc
    if not isinstance(manifest, dict) or not {"kind", "dim", "count"} <= set(manifest):
        raise MSClipError(f"{path}: not an msclip index manifest; rebuild the index")
    for part in (INDEX_FILE, METADATA_FILE):
        if not (folder / part).is_file():
            raise MSClipError(f"{folder}: the index is incomplete ({part} is missing); rebuild it")
    return manifest


def _unique_files(embedding_files: list[str]) -> list[str]:
    """Absolute paths, each once, in the order given; a folder stands for the .parquet files in it."""
    found: list[str] = []
    for item in embedding_files:
        path = Path(item)
        if path.is_dir():
            found.extend(str(p.resolve()) for p in sorted(path.rglob("*.parquet")))
        elif path.is_file():
            found.append(str(path.resolve()))
        else:
            raise MSClipError(f"embedding file not found: {item}")
    if not found:
        raise MSClipError(f"no embedding files in {', '.join(map(str, embedding_files))}")
    return list(dict.fromkeys(found))


def _utc(value: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except ValueError as exc:
        raise MSClipError(f"not a date: {value!r} (use YYYY-MM-DD or an ISO timestamp)") from exc
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).tz_localize(None)


def _nullable(times: pd.Series) -> pd.Series:
    """Timestamps as objects, missing ones as None (what the metadata promises)."""
    return pd.Series([None if pd.isna(t) else t for t in times], index=times.index, dtype=object)
