"""bf16 against fp32 on the real example chips: weights cast to bf16 vs bf16 autocast (fp32 weights).

Weights are open_clip's own initialisation of ViT-B/16 (widened to the 10 bands as the paper started), or a
checkpoint when given; random weights drawn at one scale for every tensor would amplify rounding and say
nothing. The five chips are seen in their eight flips and rotations (40 images), classified into 6 classes x
50 templates, the text tower at the same precision. Prints, per bf16 path: min / mean cosine of image
embeddings to fp32, largest probability difference, top-1 agreement, and img/s at batch 8.

    python benchmarks/precision_agreement.py [--checkpoint PATH] [--seconds 10]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import torch

import msclip
from msclip.text import class_embeddings, templates

CHIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sentinel2_l2a_examples"
CLASSES = ["ocean", "agriculture", "snow", "urban area", "forest", "river"]


def chip_batch(model) -> torch.Tensor:
    """The example chips, model-ready, in their 8 dihedral views."""
    images = torch.cat([b["image"] for b in _loader(model)])
    views = [torch.rot90(images, k, dims=(-2, -1)) for k in range(4)]
    return torch.cat(views + [v.flip(-1) for v in views])


def _loader(model):
    from torch.utils.data import DataLoader

    from msclip.data import InputOptions, chip_dataset, collate_records
    from msclip.io import iter_paths

    dataset = chip_dataset(iter_paths([str(CHIPS)]), model.bands, model.transform, InputOptions())
    return DataLoader(dataset, batch_size=8, collate_fn=collate_records)


def outputs(model, images: torch.Tensor, autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(image embeddings, class probabilities) of ``images``."""
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with context:
        classifier = class_embeddings(model, CLASSES, templates("msclip"), use_cache=False)
        embeddings = torch.cat([model.encode_image(chunk) for chunk in images.split(8)])
    return embeddings, (model.logit_scale * embeddings @ classifier.T).softmax(-1)


def speed(model, autocast: bool, seconds: float) -> float:
    batch = torch.randn(8, len(model.bands), 224, 224)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with context:
        model.encode_image(batch)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model.encode_image(batch)
            done += len(batch)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="official .pt or .safetensors (default: open_clip's init)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timing per path")
    args = parser.parse_args()
    kwargs = {"checkpoint": args.checkpoint} if args.checkpoint else {"random_init": True}
    torch.manual_seed(0)
    fp32 = msclip.load_model("Llama3-MS-CLIP-Base", device="cpu", precision="fp32", **kwargs)
    cast = msclip.load_model("Llama3-MS-CLIP-Base", device="cpu", precision="bf16", **kwargs)
    cast.clip.load_state_dict({k: v.to(torch.bfloat16) for k, v in fp32.clip.state_dict().items()})
    images = chip_batch(fp32)
    ref_embeddings, ref_probs = outputs(fp32, images, autocast=False)
    print(
        f"{len(images)} images (5 chips x 8 views), 6 classes x 50 templates, {torch.get_num_threads()} threads"
    )
    print(f"{'path':22} {'min cos':>8} {'mean cos':>9} {'max |dp|':>9} {'top-1 agree':>11} {'img/s b8':>9}")
    print(f"{'fp32':22} {1:8.5f} {1:9.5f} {0:9.4f} {'100%':>11} {speed(fp32, False, args.seconds):9.2f}")
    for label, model, autocast in (("bf16 weights cast", cast, False), ("bf16 autocast", fp32, True)):
        embeddings, probs = outputs(model, images, autocast)
        cosine = (embeddings * ref_embeddings).sum(-1)
        agree = (probs.argmax(-1) == ref_probs.argmax(-1)).float().mean()
        print(
            f"{label:22} {float(cosine.min()):8.5f} {float(cosine.mean()):9.5f} "
            f"{float((probs - ref_probs).abs().max()):9.4f} {float(agree):11.0%} {speed(model, autocast, args.seconds):9.2f}"
        )
    print(f"fp32 probabilities, first chip: {[round(p, 3) for p in ref_probs[0].tolist()]}")


if __name__ == "__main__":
    main()
