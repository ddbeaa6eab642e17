"""Core inference speed and memory for the full 10-band ViT-B-16 on this machine (random weights).

Prints images/s at batch 1 and 32 per backend and precision, text prompts/s (fp32 and the default precision),
`classify` wall time at the default precision on the example chips (6 classes x 50 templates, cold and with the
text cache; in this process, so imports are not counted: see end_to_end.py), peak RSS while embedding many
chips, and achieved GFLOP/s against the machine's ceiling: the fastest square product in fp32 and bf16 of
oneDNN (torch.mkldnn), matmul and F.linear at 2048 and 4096, measured in the same run (or given). All
figures come from one run, side by side.

    python benchmarks/core_inference.py [--chips 1000] [--peak-fp32 GFLOPS] [--peak-bf16 GFLOPS]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import msclip
from msclip.text import templates

IMAGE_GFLOP = 35.7  # one 10-band 224 px image through the ViT-B/16 image tower
PROMPT_GFLOP = 6.0  # one 77-token prompt through the text tower
CHIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sentinel2_l2a_examples"
CLASSES = ["ocean", "agriculture", "snow", "urban area", "forest", "river"]


def images_per_second(model, batch: int, seconds: float = 6.0) -> float:
    images = torch.randn(batch, len(model.bands), 224, 224)
    model.encode_image(images)  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done == 0:
        model.encode_image(images)
        done += batch
    return done / (time.perf_counter() - start)


def product_routes(size: int, dtype: torch.dtype) -> dict[str, object]:
    """Ways torch can run a (size x size) product in ``dtype``: oneDNN through torch.mkldnn, plain matmul,
    and F.linear (which route reaches the peak depends on the CPU and the torch build)."""
    from torch.utils import mkldnn

    x, w = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    layer = mkldnn.to_mkldnn(torch.nn.Linear(size, size, bias=False).eval(), dtype)
    x_mkldnn = torch.randn(size, size).to_mkldnn(dtype)
    return {
        "oneDNN Linear": lambda: layer(x_mkldnn),
        "matmul": lambda: torch.matmul(x, w),
        "F.linear": lambda: torch.nn.functional.linear(x, w),
    }


def matmul_ceiling(dtype: torch.dtype, repeats: int = 3) -> tuple[float, str]:
    """(GFLOP/s, route) of the fastest square product in ``dtype`` this machine runs: its real peak."""
    best = (0.0, "")
    with torch.no_grad():
        for size in (2048, 4096):
            for name, run in product_routes(size, dtype).items():
                run()  # warm-up
                start = time.perf_counter()
                for _ in range(repeats):
                    run()
                rate = 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9
                best = max(best, (rate, f"{name}, {size}"))
    return best


def checkpoint_file(folder: Path) -> Path:
    torch.manual_seed(0)
    model = msclip.load_model("Llama3-MS-CLIP-Base", random_init=True, device="cpu")
    path = folder / "random_vit_b16.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.clip.state_dict().items()}, str(path))
    return path


def load(path: Path, **kwargs):
    return msclip.load_model("Llama3-MS-CLIP-Base", checkpoint=str(path), device="cpu", **kwargs)


def speed_table(path: Path, peaks: dict[str, float]) -> None:
    print(f"\n== image tower, {torch.get_num_threads()} threads ==")
    print(f"{'backend':8} {'precision':9} {'batch':>5} {'img/s':>7} {'GFLOP/s':>8} {'of peak':>7}")
    reference = load(path)
    probe = torch.randn(4, 10, 224, 224)
    ref_features = reference.encode_image(probe)
    for backend, precision in (("torch", "fp32"), ("onnx", "fp32"), ("torch", "bf16")):
        model = (
            reference
            if (backend, precision) == ("torch", "fp32")
            else load(path, backend=backend, precision=precision)
        )
        cosine = float((model.encode_image(probe) * ref_features).sum(-1).min())
        for batch in (1, 32):
            rate = images_per_second(model, batch)
            gflops = rate * IMAGE_GFLOP
            print(
                f"{backend:8} {precision:9} {batch:>5} {rate:7.2f} {gflops:8.0f} {gflops / peaks[precision]:7.0%}"
            )
        print(f"{'':8} {'':9} min cosine to torch fp32: {cosine:.6f}")


def text_speed(path: Path) -> None:
    print("\n== text tower ==")
    prompts = [
        t.format(c=c) for c in [*CLASSES, "lake", "desert", "airport", "harbour"] for t in templates("msclip")
    ]
    for precision in ("fp32", "auto"):
        model = load(path, precision=precision)
        model.encode_text(prompts[:8])
        start = time.perf_counter()
        model.encode_text(prompts)
        elapsed = time.perf_counter() - start
        print(f"{len(prompts)} prompts (10 classes x 50 templates), {model.precision}: {elapsed:.2f} s, "
              f"{len(prompts) / elapsed:.0f} prompts/s (77-token equivalent {len(prompts) * PROMPT_GFLOP / elapsed:.0f} GFLOP/s)")  # fmt: skip


def classify_wall_time(path: Path) -> None:
    print(
        "\n== classify: 5 chips, 6 classes x 50 templates, default precision (wall time incl. model load) =="
    )
    with tempfile.TemporaryDirectory() as cache:
        os.environ["MSCLIP_CACHE"] = cache
        for label in ("cold text cache", "warm text cache"):
            start = time.perf_counter()
            model = load(path, precision="auto")
            result = msclip.classify(model, [CHIPS], CLASSES)
            print(f"{label:24}: {time.perf_counter() - start:6.2f} s ({len(result.table)} chips)")


def peak_rss_child(path: Path, chips: int) -> None:
    """Child process: embed ``chips`` copies of the examples and report its own peak RSS."""
    with tempfile.TemporaryDirectory() as folder:
        sources = sorted(CHIPS.glob("*.tif"))
        for i in range(chips):
            os.symlink(sources[i % len(sources)], Path(folder) / f"chip_{i:05d}.tif")
        model = load(path, backend="onnx")
        loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        table = msclip.embed(model, [folder], batch_size=32, workers=2, progress=False).table
        elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(table)} chips embedded in {elapsed:.1f} s ({len(table) / elapsed:.2f} img/s, onnx fp32, 2 workers); "
          f"peak RSS of the main process {peak_mb:.0f} MB ({loaded_mb:.0f} MB once the model was loaded)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=1000, help="chips for the peak-RSS run (0 to skip)")
    parser.add_argument("--peak-fp32", type=float, help="machine peak GFLOP/s, fp32 (default: measured)")
    parser.add_argument("--peak-bf16", type=float, help="machine peak GFLOP/s, bf16 (default: measured)")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        peak_rss_child(Path(args.rss_child), args.chips)
        return
    torch.set_num_threads(os.cpu_count() or 1)
    peaks, routes = {}, {}
    for name, dtype, given in (
        ("fp32", torch.float32, args.peak_fp32),
        ("bf16", torch.bfloat16, args.peak_bf16),
    ):
        peaks[name], routes[name] = (given, "given") if given else matmul_ceiling(dtype)
    print(
        f"== ceiling, the fastest square product: fp32 {peaks['fp32']:.0f} GFLOP/s ({routes['fp32']}), "
        f"bf16 {peaks['bf16']:.0f} GFLOP/s ({routes['bf16']}) =="
    )
    with tempfile.TemporaryDirectory() as folder:
        path = checkpoint_file(Path(folder))
        speed_table(path, peaks)
        text_speed(path)
        classify_wall_time(path)
        if args.chips:
            print(f"\n== memory: embedding {args.chips} chips ==")
            subprocess.run(
                [sys.executable, __file__, "--rss-child", str(path), "--chips", str(args.chips)], check=True
            )
    print(f"\nnumpy {np.__version__}, torch {torch.__version__}, cpu count {os.cpu_count()}")


if __name__ == "__main__":
    main()
