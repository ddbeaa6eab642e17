"""Scene mapping speed against the model's raw forward speed, and peak memory on a full 100 km tile.

1. Raw forward: windows/s of the image tower alone on ready-made tensors (the upper bound).
2. ``map_scene`` on a 2,240 px scene (100 windows) with the same model: windows/s, km^2/s and the share of
   the raw forward speed (reading, masking, preparing and tiling must not be the bottleneck).
3. ``map_scene`` on a 10,980 x 10,980 px, 12-band scene (2,401 windows) in a fresh process: peak memory
   (proportional set size of the process and its DataLoader workers, sampled every 0.1 s) and windows/s with
   the tiny model, where reading dominates.

Scenes are built from the real example chips (tiled, mirrored). Random weights; CPU.

    python benchmarks/scene_mapping.py [--model Llama3-MS-CLIP-Base] [--workers 0 2] [--tile-size 10980]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import rasterio
import torch

import msclip
from msclip.scenes import WindowOptions, map_scene, open_scene

CHIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sentinel2_l2a_examples"
CLASSES = ["ocean", "agriculture", "snow", "urban area", "forest", "river"]
WINDOW_KM2 = (224 * 10 / 1000) ** 2


def write_scene(path: Path, size: int) -> Path:
    """A 12-band L2A GeoTIFF (tiled 512 px) of ``size`` px, written strip by strip (bounded memory)."""
    chips = sorted(CHIPS.glob("*.tif"))
    tiles = []
    for chip in chips:
        with rasterio.open(chip) as src:
            tiles.append(src.read())
    with rasterio.open(chips[0]) as src:
        profile = src.profile
    profile.update(width=size, height=size, tiled=True, blockxsize=512, blockysize=512, interleave="pixel")
    n = -(-size // 224)
    with rasterio.open(path, "w", **profile) as dst:
        for i in range(n):
            strip = np.concatenate(
                [
                    tiles[(i * n + j) % 5][:, :, ::-1] if (i + j) % 2 else tiles[(i * n + j) % 5]
                    for j in range(n)
                ],
                axis=2,
            )[:, :, :size]
            height = min(224, size - i * 224)
            dst.write(strip[:, :height], window=rasterio.windows.Window(0, i * 224, size, height))
    return path


def load(name: str):
    torch.manual_seed(0)
    # msclip's default precision (bf16 where the CPU computes it natively), as `msclip map` runs
    if name == "msclip-tiny":
        return msclip.load_model(name, device="cpu", precision="auto")
    return msclip.load_model(name, random_init=True, device="cpu", precision="auto")


def forward_rate(model, batch: int, seconds: float = 20.0) -> float:
    images = torch.randn(batch, len(model.bands), 224, 224)
    model.encode_image(images)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.encode_image(images)
        done += batch
    return done / (time.perf_counter() - start)


def map_rate(model, scene_path: Path, batch: int, workers: int) -> tuple[float, int]:
    """(windows/s, windows) of map_scene, class embeddings made beforehand (cached, as on a second run)."""
    scene = open_scene(str(scene_path))
    map_scene(
        model, scene, CLASSES[:1], "clip", windows=WindowOptions(stride=4480), batch_size=batch
    )  # warm-up
    start = time.perf_counter()
    result = map_scene(model, scene, CLASSES, "clip", batch_size=batch, workers=workers)
    return len(result.windows) / (time.perf_counter() - start), len(result.windows)


def child(args: argparse.Namespace) -> None:
    """Map one scene in this (fresh) process; print windows/s and peak memory (PSS of it and its workers)."""
    model = load(args.model)
    loaded = psutil.Process().memory_full_info().pss / 2**20
    peak = [loaded]
    stop = threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not stop.wait(0.1):
            with contextlib.suppress(psutil.Error):  # a worker exiting between listing and reading
                peak[0] = max(
                    peak[0], sum(p.memory_full_info().pss for p in [me, *me.children(True)]) / 2**20
                )

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rate, windows = map_rate(model, Path(args.scene), args.batch_size, args.workers[0])
    stop.set()
    sampler.join()
    print(json.dumps({"rate": rate, "windows": windows, "peak_mib": peak[0], "loaded_mib": loaded}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="Llama3-MS-CLIP-Base")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--tile-size", type=int, default=10980)
    parser.add_argument("--tile-only", action="store_true", help="only part 3 (the full tile)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scene", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{torch.get_num_threads()} torch threads; model {args.model}, batch {args.batch_size}")
        model = load(args.model)
        raw = 0 if args.tile_only else forward_rate(model, args.batch_size)
        if raw:
            print(f"raw forward          {raw:7.2f} windows/s  {raw * WINDOW_KM2:7.2f} km^2/s")
        small = write_scene(Path(tmp) / "scene_2240.tif", 2240)
        for workers in args.workers if raw else []:
            rate, windows = map_rate(model, small, args.batch_size, workers)
            print(
                f"map 2,240 px, {workers} workers  {rate:7.2f} windows/s  {rate * WINDOW_KM2:7.2f} km^2/s  "
                f"= {100 * rate / raw:5.1f}% of raw forward ({windows} windows)"
            )
        start = time.perf_counter()
        tile = write_scene(Path(tmp) / "tile.tif", args.tile_size)
        print(f"wrote {args.tile_size:,} px 12-band tile in {time.perf_counter() - start:.0f} s")
        for workers in args.workers:
            command = [sys.executable, __file__, "--child", "--scene", str(tile), "--model", "msclip-tiny",
                       "--batch-size", str(args.batch_size), "--workers", str(workers)]  # fmt: skip
            out = json.loads(
                subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
            )
            print(
                f"map {args.tile_size:,} px tile (tiny model), {workers} workers: {out['windows']} windows, "
                f"{out['rate']:.1f} windows/s, {out['rate'] * WINDOW_KM2:.1f} km^2/s, "
                f"peak memory {out['peak_mib']:.0f} MiB PSS, process + workers ({out['loaded_mib']:.0f} MiB with the "
                f"model loaded, before mapping)"
            )


if __name__ == "__main__":
    main()
