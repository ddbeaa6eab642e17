"""Training throughput (samples/s) and peak memory with and without GradCache, on this machine's CPU.

    python benchmarks/training_throughput.py            # every case, one fresh process each
    python benchmarks/training_throughput.py --quick    # the tiny model only

Each case runs in its own process so its peak resident memory (ru_maxrss) is its own; "extra memory" is
the peak minus the memory held before the first step (model, data). It covers gradients, AdamW state
and activations; GradCache changes only the activations. Data are synthetic tensors of the model's shape:
this measures the training step, not file reading.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

#: name -> (model, global batch, GradCache chunk or None, timed steps)
CASES = {
    "tiny b32": ("msclip-tiny", 32, None, 5),
    "tiny b256": ("msclip-tiny", 256, None, 2),
    "tiny b256 gradcache32": ("msclip-tiny", 256, 32, 2),
    "ViT-B-16 b8": ("ViT-B-16", 8, None, 3),
    "ViT-B-16 b32": ("ViT-B-16", 32, None, 1),
    "ViT-B-16 b32 gradcache8": ("ViT-B-16", 32, 8, 1),
}
QUICK = ("tiny b32", "tiny b256", "tiny b256 gradcache32")
CAPTION = "Sentinel-2 image of agricultural fields with a river and a small village in a rural area"


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_case(name: str) -> dict:
    import torch

    from msclip import load_model
    from msclip.bands import S2_10
    from msclip.training.loss import contrastive_step, make_loss
    from msclip.training.params import apply_preset, param_groups

    arch, batch, chunk, steps = CASES[name]
    torch.manual_seed(0)
    model = load_model(arch, bands=S2_10, random_init=True, device="cpu")
    clip = model.clip.train()
    apply_preset(clip, "full")
    optimizer = torch.optim.AdamW(param_groups(clip, 3.76e-5, 0.1, 0.05))
    images = torch.randn(batch, len(S2_10), 224, 224)
    tokens = model.tokenizer([CAPTION] * batch)
    loss_fn = make_loss()
    before = _rss_mib()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        contrastive_step(clip, loss_fn, images, tokens, chunk)
        optimizer.step()

    step()  # warm-up: allocates gradients and optimiser state
    started = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "case": name,
        "params_M": round(sum(p.numel() for p in clip.parameters()) / 1e6, 1),
        "samples_per_s": round(batch * steps / elapsed, 2),
        "s_per_step": round(elapsed / steps, 2),
        "extra_memory_MiB": round(peak - before),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=list(CASES), help="run one case in this process (prints JSON)")
    parser.add_argument("--quick", action="store_true", help="the tiny model only")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    print(f"{'case':<26}{'params M':>9}{'samples/s':>11}{'s/step':>8}{'extra MiB':>11}{'threads':>8}")
    for name in QUICK if args.quick else CASES:
        out = subprocess.run(
            [sys.executable, __file__, "--case", name], capture_output=True, text=True, env=env, check=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['case']:<26}{r['params_M']:>9}{r['samples_per_s']:>11}{r['s_per_step']:>8}"
            f"{r['extra_memory_MiB']:>11}{r['threads']:>8}"
        )


if __name__ == "__main__":
    main()
