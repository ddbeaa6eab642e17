"""FAISS index: exact = brute force, IVF recall on clustered vectors, filters, appends, real chip tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from msclip.errors import MSClipError
from msclip.index import add_to_index, build_index, open_index, store

UTM = "EPSG:32632"  # boxes near 9 E, 0-9 N


def clustered_unit_vectors(n: int, dim: int, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """A Gaussian mixture on the sphere, like real image embeddings (groups of similar scenes)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    vectors = centres[rng.integers(clusters, size=n)] + rng.normal(scale=0.6, size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def write_embeddings(path, vectors: np.ndarray, first: int = 0) -> pd.DataFrame:
    """A chip-style embedding table: 1 km boxes on a UTM grid, one date per day from 2023-01-01."""
    n = len(vectors)
    i = np.arange(first, first + n)
    x, y = 500_000 + (i % 100) * 1000.0, (i // 100) * 1000.0
    table = pd.DataFrame(
        {
            "image": [f"chip_{k}.tif" for k in i],
            "embedding": list(vectors),
            "crs": UTM,
            "bounds": [[a, b, a + 1000, b + 1000] for a, b in zip(x, y, strict=True)],
            "datetime": pd.Timestamp("2023-01-01", tz="UTC") + pd.to_timedelta(i % 365, unit="D"),
        }
    )
    table.to_parquet(path, index=False)
    return table


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]


@pytest.fixture
def collection(tmp_path):
    vectors = clustered_unit_vectors(3000, 32)
    write_embeddings(tmp_path / "a.parquet", vectors[:2000])
    write_embeddings(tmp_path / "b.parquet", vectors[2000:], first=2000)
    return tmp_path, vectors


def test_exact_index_matches_brute_force(collection):
    folder, vectors = collection
    build_index([str(folder / "a.parquet"), str(folder / "b.parquet")], str(folder / "idx"))
    index = open_index(str(folder / "idx"))
    assert index.kind == "flat" and len(index) == 3000 and index.model_name is None
    queries = clustered_unit_vectors(20, 32, seed=1)
    hits = index.search(queries, top_k=10)
    assert list(hits.columns) == store.RESULT_COLUMNS
    expected = brute_force(vectors, queries, 10)
    np.testing.assert_array_equal(hits["id"].to_numpy().reshape(20, 10), expected)
    np.testing.assert_allclose(
        hits["score"].to_numpy().reshape(20, 10),
        np.take_along_axis(queries @ vectors.T, expected, 1),
        atol=1e-5,
    )
    assert hits["image"].iloc[0] == f"chip_{expected[0, 0]}.tif"
    lon, lat = hits.geometry.iloc[0].centroid.coords[0]
    assert 8 < lon < 10 and 0 <= lat < 1  # the UTM box came back in EPSG:4326


def test_ivf_keeps_recall_on_clustered_vectors(tmp_path):
    vectors = clustered_unit_vectors(100_000, 32, clusters=200)
    write_embeddings(tmp_path / "e.parquet", vectors)
    build_index([str(tmp_path / "e.parquet")], str(tmp_path / "idx"))  # auto -> IVF above EXACT_LIMIT
    index = open_index(str(tmp_path / "idx"))
    assert index.kind == "ivf"
    queries = clustered_unit_vectors(100, 32, clusters=200, seed=7)
    found = index.search(queries, top_k=10)["id"].to_numpy().reshape(100, 10)
    exact = brute_force(vectors, queries, 10)
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact, strict=True)])
    assert recall >= 0.95


@pytest.mark.parametrize("subset_limit", [store.SUBSET_LIMIT, 0])  # exact subset, and FAISS's ID selector
@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_filters_return_exactly_the_best_matching_rows(collection, monkeypatch, kind, subset_limit):
    folder, vectors = collection
    monkeypatch.setattr(store, "SUBSET_LIMIT", subset_limit)
    build_index([str(folder)], str(folder / "idx"), kind=kind)
    index = open_index(str(folder / "idx"))
    bbox, start, end = (9.0, 0.0, 9.5, 0.1), "2023-02-01", "2023-06-30"
    rows = index.metadata
    allowed = rows.geometry.intersects(shapely.box(*bbox)).to_numpy() & np.array(
        [
            t is not None and pd.Timestamp("2023-02-01", tz="UTC") <= t < pd.Timestamp("2023-07-01", tz="UTC")
            for t in rows["datetime"]
        ]
    )
    assert 0 < allowed.sum() < len(rows)
    queries = clustered_unit_vectors(5, 32, seed=3)
    hits = index.search(queries, top_k=5, bbox=bbox, start=start, end=end, nprobe=index.manifest.get("nlist"))
    ids = np.flatnonzero(allowed)
    expected = ids[brute_force(vectors[ids], queries, 5)]
    if kind == "hnsw" and subset_limit == 0:  # approximate graph search: most, not all, of the true top 5
        assert np.mean(np.isin(hits["id"].to_numpy(), expected)) >= 0.8
    else:
        np.testing.assert_array_equal(hits["id"].to_numpy().reshape(5, 5), expected)
    assert allowed[hits["id"].to_numpy()].all()


def test_add_to_index_equals_building_at_once(collection):
    folder, vectors = collection
    a, b = str(folder / "a.parquet"), str(folder / "b.parquet")
    build_index([a], str(folder / "grown"))
    add_to_index(str(folder / "grown"), [b, a])  # a is already in: not added twice
    grown = open_index(str(folder / "grown"))
    assert len(grown) == 3000 and grown.metadata["id"].tolist() == list(range(3000))
    queries = clustered_unit_vectors(4, 32, seed=5)
    np.testing.assert_array_equal(grown.search(queries, 7)["id"], brute_force(vectors, queries, 7).ravel())


def test_an_auto_index_that_outgrows_its_kind_is_retrained_on_add(collection, monkeypatch):
    folder, _ = collection
    monkeypatch.setattr(store, "EXACT_LIMIT", 2500)
    a, b = str(folder / "a.parquet"), str(folder / "b.parquet")
    build_index([a], str(folder / "auto"))
    build_index([a], str(folder / "exact"), kind="flat")
    assert open_index(str(folder / "auto")).kind == "flat"
    assert add_to_index(str(folder / "auto"), [b])  # 3,000 vectors: past the exact limit
    assert not add_to_index(str(folder / "exact"), [b])  # a kind asked for is kept
    grown = open_index(str(folder / "auto"))
    assert grown.kind == "ivf" and grown.manifest["trained_on"] == 3000 and len(grown) == 3000
    assert open_index(str(folder / "exact")).kind == "flat"
    build_index([a, b], str(folder / "at-once"))  # the vectors read back from the flat index are the same
    queries = clustered_unit_vectors(50, 32, seed=6)
    expected = open_index(str(folder / "at-once")).search(queries, 10)
    pd.testing.assert_frame_equal(grown.search(queries, 10), expected)
    assert not add_to_index(str(folder / "auto"), [b])  # nothing new


def test_mistakes_are_user_errors(collection, tmp_path):
    folder, _ = collection
    with pytest.raises(MSClipError, match="not an msclip index"):
        open_index(str(tmp_path / "nowhere"))
    build_index([str(folder / "a.parquet")], str(folder / "idx"))
    with pytest.raises(MSClipError, match=r"shape \(1, 8\).* 32-dimension embeddings"):
        open_index(str(folder / "idx")).search(np.ones((1, 8), np.float32))
    pd.DataFrame({"image": ["x"], "embedding": [np.ones(8, np.float32)]}).to_parquet(folder / "small.parquet")
    with pytest.raises(MSClipError, match="dimensions"):
        add_to_index(str(folder / "idx"), [str(folder / "small.parquet")])


def test_damaged_indexes_are_one_line_errors(collection):
    folder, _ = collection
    build_index([str(folder / "a.parquet")], str(folder / "idx"))
    manifest = folder / "idx" / store.MANIFEST_FILE
    good = manifest.read_text()
    for text, message in (("{not json", "unreadable index manifest"), ("[1, 2]", "not an msclip index")):
        manifest.write_text(text)
        with pytest.raises(MSClipError, match=message):
            open_index(str(folder / "idx"))
    manifest.write_text(good)
    (folder / "idx" / store.INDEX_FILE).unlink()
    with pytest.raises(MSClipError, match="vectors.faiss is missing"):
        open_index(str(folder / "idx"))


def test_index_of_real_chip_embeddings(tiny_model, chip_paths, tmp_path):
    from tests.helpers import read_array, write_geotiff

    from msclip import embed
    from msclip.io import write_table

    dated = write_geotiff(
        tmp_path / "dated.tif",
        read_array(chip_paths[0]),
        like=chip_paths[0],
        tags={"DATETIME": "2023-06-01T10:20:31Z"},
    )
    table = embed(tiny_model, [str(p) for p in chip_paths] + [str(dated)]).table
    write_table(table, tmp_path / "chips.parquet")
    build_index([str(tmp_path / "chips.parquet")], str(tmp_path / "idx"))
    index = open_index(str(tmp_path / "idx"))
    assert index.model_name == tiny_model.spec.name  # recorded by `embed`, so queries are embedded alike
    assert index.metadata["image"].tolist() == table["image"].tolist()
    assert index.metadata["datetime"].isna().sum() == len(chip_paths)  # the examples carry no date
    assert index.metadata.set_index("image")["datetime"][str(dated)] == pd.Timestamp("2023-06-01T10:20:31Z")
    june = index.search(
        np.stack(table["embedding"].to_list()).astype(np.float32)[:1], top_k=9, start="2023-06-01"
    )
    assert june["image"].tolist() == [str(dated)]
    query = np.stack(table["embedding"].iloc[2:3].to_list()).astype(np.float32)
    hits = index.search(query, top_k=3)
    assert hits["image"].iloc[0] == table["image"].iloc[2] and hits["score"].iloc[0] == pytest.approx(
        1, abs=1e-5
    )
    assert hits.geometry.iloc[0].equals(index.metadata.geometry.iloc[2])
    minx, miny, maxx, maxy = hits.geometry.iloc[0].bounds
    assert -180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90


def test_searching_with_another_model_names_both_models(tmp_path, capsys):
    """An index of one model's embeddings, queried with another's: the error says which models."""
    import json

    import pyarrow.parquet as pq

    from msclip.cli import main
    from msclip.index.tables import METADATA_KEY

    write_embeddings(tmp_path / "big.parquet", clustered_unit_vectors(20, 64))
    table = pq.read_table(tmp_path / "big.parquet")
    metadata = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps({"model": "Llama3-MS-CLIP-Base"})}
    pq.write_table(table.replace_schema_metadata(metadata), tmp_path / "big.parquet")
    build_index([str(tmp_path / "big.parquet")], str(tmp_path / "idx"))
    with pytest.raises(MSClipError, match="64-dimension embeddings of Llama3-MS-CLIP-Base"):
        open_index(str(tmp_path / "idx")).search(np.ones((1, 32), np.float32))
    args = ["index", "search", str(tmp_path / "idx"), "--query", "a river", "--model", "msclip-tiny"]
    assert main([*args, "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Llama3-MS-CLIP-Base" in err and "msclip-tiny" in err
    write_embeddings(tmp_path / "unrecorded.parquet", clustered_unit_vectors(20, 64))
    build_index([str(tmp_path / "unrecorded.parquet")], str(tmp_path / "idx2"))
    args = ["index", "search", str(tmp_path / "idx2"), "--query", "a river", "--model", "msclip-tiny"]
    assert main([*args, "--device", "cpu"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("msclip: error")]
    assert len(errors) == 1 and "msclip-tiny gives 32-dimension queries" in errors[0]
    assert "64-dimension" in errors[0]


def test_searching_with_another_model_of_the_same_size_is_refused_before_loading_it(
    tmp_path, capsys, monkeypatch
):
    """Same dimension, other model: the vectors are unrelated, so the scores would be noise."""
    import json

    import pyarrow.parquet as pq

    from msclip.cli import main
    from msclip.index.tables import METADATA_KEY

    write_embeddings(tmp_path / "e.parquet", clustered_unit_vectors(20, 32))
    table = pq.read_table(tmp_path / "e.parquet")
    metadata = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps({"model": "msclip-tiny-rgb"})}
    pq.write_table(table.replace_schema_metadata(metadata), tmp_path / "e.parquet")
    build_index([str(tmp_path / "e.parquet")], str(tmp_path / "idx"))
    monkeypatch.setattr("msclip.models.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    args = ["index", "search", str(tmp_path / "idx"), "--query", "a river", "--model", "msclip-tiny"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "msclip-tiny-rgb embeddings" in err and "--model msclip-tiny" in err
