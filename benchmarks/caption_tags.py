"""Tag step throughput: 10,000 synthetic chip footprints over a 100,000-feature Overture-schema extract.

Prints the time to read + index the GeoParquet extract and chips/s of ``OvertureIndex.tags`` in pipeline-sized
batches and in one call. Run: ``.venv/bin/python benchmarks/caption_tags.py [--chips N] [--features N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from msclip.captioning.overture import OvertureIndex

REGION = (8.0, 45.0, 10.0, 47.0)  # lon/lat, about 155 x 222 km
CHIP_DEG = 0.034  # 264 px x 10 m


def synthetic_extract(folder: Path, count: int, rng: np.random.Generator) -> None:
    """80 % polygons (land, land_use, water), 10 % lines (infrastructure), 10 % points (places)."""
    minx, miny, maxx, maxy = REGION
    kinds = {
        "land": ("forest", "grass", "rock"),
        "land_use": ("farmland", "residential"),
        "water": ("lake", "river"),
    }
    n_poly = int(count * 0.8) // len(kinds)
    for kind, classes in kinds.items():
        x, y = rng.uniform(minx, maxx, n_poly), rng.uniform(miny, maxy, n_poly)
        size = rng.lognormal(np.log(0.004), 1.0, n_poly)
        _write(folder, "base", kind, shapely.box(x, y, x + size, y + size), rng.choice(classes, n_poly))
    n = count // 10
    x, y = rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)
    lines = shapely.linestrings(np.stack([np.stack([x, y], 1), np.stack([x + 0.01, y + 0.005], 1)], 1))
    _write(folder, "base", "infrastructure", lines, rng.choice(["bridge", "power line"], n))
    points = shapely.points(rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n))
    _write(folder, "places", "place", points, rng.choice(["restaurant", "school"], n))


def _write(folder: Path, theme: str, kind: str, geometry, classes) -> None:
    names = [{"primary": f"{kind} {i}", "common": None} if i % 5 == 0 else None for i in range(len(classes))]
    frame = gpd.GeoDataFrame(
        {"class": classes, "subtype": classes, "names": names}, geometry=geometry, crs=4326
    )
    target = folder / f"theme={theme}" / f"type={kind}"
    target.mkdir(parents=True)
    frame.to_parquet(target / "part-00000.parquet", write_covering_bbox=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chips", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=256, help="chips per tags() call, as a pipeline batch")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_extract(Path(tmp), args.features, rng)
        start = time.perf_counter()
        index = OvertureIndex.from_parquet([tmp])
        load_s = time.perf_counter() - start
    x = rng.uniform(REGION[0], REGION[2] - CHIP_DEG * 1.4, args.chips)
    y = rng.uniform(REGION[1], REGION[3] - CHIP_DEG, args.chips)
    footprints = shapely.box(x, y, x + CHIP_DEG * 1.4, y + CHIP_DEG)
    start = time.perf_counter()
    tags = [t for i in range(0, args.chips, args.batch) for t in index.tags(footprints[i : i + args.batch])]
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    index.tags(footprints)
    single_s = time.perf_counter() - start
    print(f"features indexed: {len(index):,}  read + index: {load_s:.2f} s")
    print(f"chips: {args.chips:,}  mean tags/chip: {np.mean([len(t.tags) for t in tags]):.1f}")
    print(f"tag step, batches of {args.batch}: {args.chips / batched_s:,.0f} chips/s ({batched_s:.2f} s)")
    print(f"tag step, one call: {args.chips / single_s:,.0f} chips/s ({single_s:.2f} s)")


if __name__ == "__main__":
    main()
