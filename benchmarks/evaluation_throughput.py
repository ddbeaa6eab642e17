"""Images/s of the ``msclip evaluate`` loop vs the model's raw forward speed on the same machine.

The loop reads EuroSAT-MS-like files (13-band 64 x 64 GeoTIFFs with B8A last, cut from the real example
chips), selects bands by name, resizes, normalises and encodes them in DataLoader workers; the raw forward
encodes one ready tensor batch over and over. A ratio near 100 % means the loop is not data-bound.

    .venv/bin/python benchmarks/evaluation_throughput.py --images 128 --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio
import torch
from torch.utils.data import DataLoader

from msclip.bands import LAYOUTS
from msclip.data import InputOptions, collate_records
from msclip.evaluation.datasets import resolve
from msclip.evaluation.runner import sample_dataset, score
from msclip.models import load_model

CHIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sentinel2_l2a_examples"


def write_eurosat_like(root: Path, count: int, size: int = 64) -> None:
    """``count`` 13-band EuroSAT-layout files in two class folders, cut from the example chips."""
    chips = sorted(CHIPS.glob("*.tif"))
    l2a, eurosat = LAYOUTS["L2A"], LAYOUTS["EuroSAT"]
    for i in range(count):
        with rasterio.open(chips[i % len(chips)]) as src:
            array = src.read()
        offset = (i * 7) % (array.shape[-1] - size)
        window = array[:, offset : offset + size, offset : offset + size]
        layers = np.stack([window[l2a.index(b)] if b in l2a else np.zeros_like(window[0]) for b in eurosat])
        folder = root / ("Forest" if i % 2 else "River")
        folder.mkdir(parents=True, exist_ok=True)
        profile = {"driver": "GTiff", "count": 13, "height": size, "width": size, "dtype": "int16"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # EuroSAT-like chips need no georeference here
            with rasterio.open(folder / f"{folder.name}_{i}.tif", "w", **profile) as dst:
                dst.write(layers)


def raw_forward(model, batch: torch.Tensor, images: int) -> float:
    """Images/s of ``encode_image`` alone on a ready batch (after one warm-up call)."""
    model.encode_image(batch)
    start = time.perf_counter()
    done = 0
    while done < images:
        model.encode_image(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def data_only(model, dataset, batch_size: int, workers: int) -> float:
    """Images/s of reading and preparing alone (the loop's DataLoader without the model)."""
    samples = sample_dataset(dataset, model.bands, model.transform, InputOptions())
    loader = DataLoader(samples, batch_size=batch_size, num_workers=workers, collate_fn=collate_records)
    start = time.perf_counter()
    count = sum(len(batch["index"]) for batch in loader)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="Llama3-MS-CLIP-Base")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = load_model(args.model, random_init=True, device=args.device)
    classifier = torch.nn.functional.normalize(torch.randn(10, model.clip.text_projection.shape[-1]), dim=-1)
    with tempfile.TemporaryDirectory() as folder:
        write_eurosat_like(Path(folder), args.images)
        dataset = resolve(f"eurosat-ms={folder}", Path(folder))
        first = score(model, dataset, classifier, batch_size=args.batch_size, workers=args.workers)  # warm-up
        start = time.perf_counter()
        scores = score(model, dataset, classifier, batch_size=args.batch_size, workers=args.workers)
        loop = len(scores.indices) / (time.perf_counter() - start)
        data = data_only(model, dataset, args.batch_size, args.workers)
    assert len(first.indices) == args.images
    batch = torch.randn(args.batch_size, len(model.bands), 224, 224)
    forward = raw_forward(model, batch, args.images)
    print(
        f"model {model.spec.name} on {model.device}, {torch.get_num_threads()} torch threads, batch {args.batch_size}"
    )
    print(f"raw forward:      {forward:8.2f} images/s")
    print(f"evaluation loop:  {loop:8.2f} images/s ({args.workers} workers, {args.images} EuroSAT-MS files)")
    print(f"loop / forward:   {100 * loop / forward:8.1f} %")
    print(f"data alone:       {data:8.2f} images/s (reading + preparing, no model)")


if __name__ == "__main__":
    main()
