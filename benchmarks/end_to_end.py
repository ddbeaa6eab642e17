"""End to end, as a user meets it: the reference code's pipeline vs ``msclip classify`` (default flags), on
N copies of the example chips, 6 classes x 50 templates, cold caches, each in a fresh process.

The reference run re-does the steps of the reference ``inference.py`` with its defaults: open_clip model
built, the official ``.pt`` loaded with ``torch.load``, the text tower in fp32 at 77 tokens one class at a
time, every chip read with rasterio, resized and normalised, then all images in one batch under CPU bf16
autocast. Weights are random, saved in the official layout (the speed does not depend on their values).
Then the peak RSS of ``msclip classify`` on 30 and on 300 chips (bounded by the batch, not the folder), and
the raw image-tower forward of msclip's default precision at batch 32, to compare the end-to-end images/s
with. The load average is printed at the start and the end: on a shared machine, only ratios from one run
count.

    python benchmarks/end_to_end.py --chips 5 200 1000 [--repeat 3] [--memory 30 300 | --no-memory]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sentinel2_l2a_examples"
CLASSES = ["ocean", "agriculture", "snow", "urban area", "forest", "river"]
ARCH = "ViT-B-16"
MODEL_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
L2A_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def reference_run(checkpoint: str, folder: str) -> None:
    """Child process: the reference pipeline's steps, timed by the parent from process start."""
    import open_clip
    import rasterio
    import torch
    import torch.nn.functional as F
    import torchvision.transforms.functional as TF

    from msclip.models.registry import spec_for
    from msclip.text import templates

    spec = spec_for("Llama3-MS-CLIP-Base")
    model = open_clip.create_model(ARCH)
    conv = model.visual.conv1
    model.visual.conv1 = torch.nn.Conv2d(10, conv.out_channels, conv.kernel_size, conv.stride, bias=False)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    prefix = "clip_base_model.model."
    model.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    model.eval()
    tokenizer = open_clip.get_tokenizer(ARCH)
    with torch.no_grad():  # the reference's text autocast is CUDA's: a no-op on the CPU, so fp32
        weights = []
        for name in CLASSES:
            features = F.normalize(
                model.encode_text(tokenizer([t.format(c=name) for t in templates()])), dim=-1
            )
            weights.append(F.normalize(features.mean(0), dim=0))
        classifier = torch.stack(weights, dim=1)
    index = [L2A_BANDS.index(b) for b in MODEL_BANDS]
    images = []
    for path in sorted(Path(folder).glob("*.tif")):
        with rasterio.open(path) as src:
            image = torch.from_numpy(src.read().astype("float32")[index])
        image = TF.resize(image, [224], interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
        images.append(TF.normalize(image, spec.mean, spec.std))
    with torch.no_grad(), torch.autocast(device_type="cpu"):
        features = F.normalize(model.encode_image(torch.stack(images)), dim=-1)
        probabilities = (100.0 * features @ classifier).softmax(dim=-1).float()
    print(f"reference classified {len(probabilities)} chips")


def official_checkpoint(folder: Path) -> Path:
    """Random ViT-B/16 weights (open_clip's initialisation) in the official Llama3-MS-CLIP layout."""
    import torch

    import msclip
    from msclip.models.checkpoint import to_official_layout

    torch.manual_seed(0)
    model = msclip.load_model("Llama3-MS-CLIP-Base", random_init=True, device="cpu", precision="fp32")
    path = folder / "Llama3-MS-CLIP-Base.pt"
    torch.save(to_official_layout(model.clip.state_dict()), path)
    return path


def chip_folder(root: Path, count: int) -> Path:
    folder = root / f"chips_{count}"
    folder.mkdir()
    sources = sorted(CHIPS.glob("*.tif"))
    for i in range(count):
        os.symlink(sources[i % len(sources)], folder / f"chip_{i:05d}.tif")
    return folder


def timed(command: list[str], cache: Path) -> tuple[float, float]:
    """Wall seconds and peak resident MB (``/usr/bin/time -v``'s maximum RSS) of a fresh process, with an
    empty msclip cache."""
    env = {**os.environ, "MSCLIP_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 3):
        sys.exit(f"{command[:4]} failed:\n{stderr[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def classify_command(checkpoint: Path, folder: Path, output: Path) -> list[str]:
    """``msclip classify`` with its default flags, as a user runs it."""
    return [sys.executable, "-c", "from msclip.cli import entry; entry()", "classify", str(folder),
            "--classes", *CLASSES, "--checkpoint", str(checkpoint), "--output", str(output)]  # fmt: skip


def peak_memory(root: Path, checkpoint: Path, counts: tuple[int, int]) -> None:
    """Peak RSS of ``msclip classify`` on few and on many chips: memory is bounded by the batch, not the
    folder."""
    peaks = []
    for count in counts:
        folder = root / f"chips_{count}" if (root / f"chips_{count}").exists() else chip_folder(root, count)
        _, rss = timed(
            classify_command(checkpoint, folder, root / f"mem{count}.csv"), root / f"memcache{count}"
        )
        peaks.append(rss)
    print(f"\npeak RSS of msclip classify: {counts[0]} chips {peaks[0]:.0f} MB, {counts[1]} chips "
          f"{peaks[1]:.0f} MB (growth {peaks[1] - peaks[0]:+.0f} MB)")  # fmt: skip


def raw_forward(model, batch: int = 32, images: int = 64) -> float:
    """Images/s of the image tower alone on a ready batch."""
    import torch

    tensor = torch.randn(batch, 10, 224, 224)
    model.encode_image(tensor)
    start, done = time.perf_counter(), 0
    while done < images:
        model.encode_image(tensor)
        done += batch
    return done / (time.perf_counter() - start)


def classify_rate(model, folder: Path) -> float:
    """Images/s of ``msclip.classify`` end to end over ``folder`` (reading, preparing, encoding, scoring)."""
    import msclip

    msclip.classify(model, [str(next(folder.iterdir()))], CLASSES)  # class embeddings into the cache
    start = time.perf_counter()
    table = msclip.classify(model, [str(folder)], CLASSES).table
    return len(table) / (time.perf_counter() - start)


def throughput(checkpoint: Path, folder: Path) -> None:
    """msclip's default model: end-to-end classify images/s against the raw forward, same process."""
    import msclip

    model = msclip.load_model(
        "Llama3-MS-CLIP-Base", checkpoint=str(checkpoint), device="cpu", precision="auto"
    )
    before = raw_forward(model)
    rate = classify_rate(model, folder)
    after = raw_forward(model)  # raw timed on both sides, so a change of load shows
    raw = (before + after) / 2
    print(f"\nraw image tower, msclip default ({model.precision}), batch 32: {raw:.2f} img/s "
          f"({before:.2f} before, {after:.2f} after the end-to-end run)")  # fmt: skip
    print(f"msclip.classify over {len(list(folder.iterdir()))} chips (model loaded, class embeddings cached): "
          f"{rate:.2f} img/s, {rate / raw:.0%} of raw")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--chips", type=int, nargs="+", default=[5, 200], help="chip counts (e.g. 5 200 1000)"
    )
    parser.add_argument(
        "--memory", type=int, nargs=2, default=[30, 300], metavar=("FEW", "MANY"),
        help="chip counts whose peak RSS of classify is compared (default 30 300)",
    )  # fmt: skip
    parser.add_argument("--no-memory", dest="memory", action="store_const", const=None)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each side per chip count; the quickest counts (shared machines)",
    )
    parser.add_argument("--reference-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_child:
        reference_run(*args.reference_child)
        return
    here = Path(__file__).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        checkpoint = official_checkpoint(root)
        print(f"load average {os.getloadavg()[0]:.2f} at the start")
        print(f"{'chips':>6} {'reference s':>12} {'msclip s':>9} {'speed-up':>9} {'msclip peak RSS':>16}")
        for count in args.chips:
            folder = chip_folder(root, count)
            runs = []  # the two side by side, --repeat times; each side's quickest run counts
            for attempt in range(args.repeat):
                reference, _ = timed(
                    [sys.executable, str(here), "--reference-child", str(checkpoint), str(folder)],
                    root / f"ref{count}_{attempt}",
                )
                ours, rss = timed(
                    classify_command(checkpoint, folder, root / f"out{count}.csv"),
                    root / f"cache{count}_{attempt}",
                )
                runs.append((reference, ours, rss))
            reference, ours, rss = min(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs)
            print(f"{count:6d} {reference:12.1f} {ours:9.1f} {reference / ours:8.1f}x {rss:13.0f} MB")
        if args.memory:
            peak_memory(root, checkpoint, tuple(args.memory))
        os.environ["MSCLIP_CACHE"] = str(root / "throughput")
        throughput(checkpoint, root / f"chips_{max(args.chips)}")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} cores; timings are wall seconds of fresh processes")


if __name__ == "__main__":
    main()
