"""Embedding-index search: recall and speed of the approximate (IVF) index against exact search.

Vectors are unit vectors from a Gaussian mixture (clusters of similar scenes, as real embeddings are),
written as ``msclip embed``-style Parquet files and indexed with the public API. Prints build time,
recall@10 of IVF vs exact at 100,000 vectors, and per-query latency of exact vs IVF search at 1,000,000.

    python benchmarks/index_search.py [--dim 512] [--sizes 100000 1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from msclip.index import build_index, open_index

CHUNK = 100_000
#: Noise per coordinate around a unit-variance centre: 1.0 puts a vector as far from its centre as the
#: centre is from the origin (overlapping clusters, harder than real embedding collections).
SPREAD = 1.0


def mixture(n: int, dim: int, clusters: int, seed: int, spread: float = SPREAD) -> np.ndarray:
    """Unit vectors around ``clusters`` fixed random centres, each coordinate spread by ``spread``."""
    centres = np.random.default_rng(0).normal(size=(clusters, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    vectors = centres[rng.integers(clusters, size=n)] + rng.normal(scale=spread, size=(n, dim)).astype(
        np.float32
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def write_collection(folder: Path, n: int, dim: int, clusters: int) -> list[str]:
    """Embedding files of CHUNK rows each (image name, embedding), as ``msclip embed`` writes them."""
    files = []
    for start in range(0, n, CHUNK):
        vectors = mixture(min(CHUNK, n - start), dim, clusters, seed=start + 1)
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim).cast(
            pa.list_(pa.float32())
        )
        images = pa.array([f"chip_{i}.tif" for i in range(start, start + len(vectors))])
        path = folder / f"part_{start // CHUNK:03d}.parquet"
        pq.write_table(pa.table({"image": images, "embedding": embedding}), path)
        files.append(str(path))
    return files


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def measure(n: int, dim: int, clusters: int, n_queries: int, folder: Path) -> None:
    files = write_collection(folder, n, dim, clusters)
    queries = mixture(n_queries, dim, clusters, seed=10**9)
    row = {}
    for kind in ("flat", "ivf"):
        _, build = timed(lambda k=kind: build_index(files, str(folder / k), kind=k))
        index = open_index(str(folder / kind))
        index.search(queries[:5], 10)  # warm-up
        hits, batch_s = timed(lambda i=index: i.search(queries, 10))
        singles = [timed(lambda i=index, q=q: i.search(q[None], 10))[1] for q in queries[:50]]
        row[kind] = (
            hits["id"].to_numpy().reshape(n_queries, 10),
            build,
            batch_s / n_queries,
            np.median(singles),
        )
        extra = f" nlist={index.manifest['nlist']} nprobe={index.manifest['nprobe']}" if kind == "ivf" else ""
        print(
            f"{n:>9,} x {dim}  {kind:4}  build {build:6.1f} s  "
            f"batched {1000 * row[kind][2]:7.2f} ms/query  single {1000 * row[kind][3]:7.2f} ms/query{extra}"
        )
    exact, approx = row["flat"][0], row["ivf"][0]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    print(
        f"{n:>9,} x {dim}  recall@10 IVF vs exact = {recall:.4f}; speed-up batched "
        f"{row['flat'][2] / row['ivf'][2]:.1f}x, single query {row['flat'][3] / row['ivf'][3]:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    import faiss

    print(f"FAISS {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            measure(n, args.dim, args.clusters, args.queries, Path(tmp))


if __name__ == "__main__":
    main()
