"""Few-shot adaptation on the CPU: fit time per method (10 classes x 16 shots), accuracy per shots on a
CLIP-like synthetic set, and the cost of transductive inference over 10,000 windows.

The synthetic embeddings imitate CLIP's geometry (see ``clip_like``): images at cosine ~0.5 to each other,
a text classifier that confuses classes (zero-shot ~0.6 accurate). Run: ``.venv/bin/python benchmarks/adapt_methods.py``.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
import torch.nn.functional as F

from msclip.adapt import METHODS, fit_head, transductive_probabilities
from msclip.adapt.methods import Shots

DIM = 512  # ViT-B/16's embedding size


def clip_like(n_classes: int, per_class: int, seed: int, rank: int = 32) -> tuple[Shots, Shots]:
    """(a pool to draw shots from, a test set) sharing class directions and the text classifier.

    Images: a shared direction, their class direction, noise in a ``rank``-dimensional subspace (cosine
    ~0.5 between images); text: each class direction mixed with the others (zero-shot ~0.6 accurate).
    """
    generator = torch.Generator().manual_seed(seed)
    common = F.normalize(torch.randn(DIM, generator=generator), dim=0)
    centres = F.normalize(torch.randn(n_classes, DIM, generator=generator), dim=-1)
    basis = torch.linalg.qr(torch.randn(DIM, rank, generator=generator))[0].T
    mixing = torch.randn(n_classes, n_classes, generator=generator) / n_classes**0.5
    text = F.normalize(centres + 1.6 * mixing @ centres, dim=-1)

    def draw(n: int) -> Shots:
        labels = torch.arange(n_classes).repeat_interleave(n)
        noise = torch.randn(len(labels), rank, generator=generator) / rank**0.5 @ basis
        features = F.normalize(1.5 * common + 0.6 * centres[labels] + 1.5 * noise, dim=-1)
        return Shots(features, labels, text)

    return draw(per_class), draw(200)


def first_shots(pool: Shots, shots: int, n_classes: int) -> Shots:
    per_class = len(pool.labels) // n_classes
    index = torch.cat([torch.arange(c * per_class, c * per_class + shots) for c in range(n_classes)])
    return Shots(pool.features[index], pool.labels[index], pool.text)


def accuracy(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probabilities.argmax(-1) == labels).float().mean())


def fit_times(n_classes: int, shots: int, repeats: int) -> None:
    pool, test = clip_like(n_classes, shots, seed=0)
    print(f"fit time, {n_classes} classes x {shots} shots, {DIM}-d embeddings (median of {repeats}):")
    for method in METHODS:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            head = fit_head(pool, method, [str(c) for c in range(n_classes)], {})
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        head.probabilities(test.features)
        scored = time.perf_counter() - start
        print(
            f"  {method:14s} fit {sorted(times)[len(times) // 2] * 1000:8.1f} ms"
            f"   score {len(test.labels)} images {scored * 1000:6.1f} ms"
        )


def accuracy_curves(n_classes: int, seeds: int) -> None:
    shots_list = (1, 2, 4, 8, 16)
    print(f"\naccuracy on the CLIP-like set ({n_classes} classes, mean of {seeds} seeds):")
    print("  method          zero-shot " + " ".join(f"{s:>6d}" for s in shots_list))
    rows: dict[str, list[float]] = {m: [0.0] * len(shots_list) for m in [*METHODS, "transductive"]}
    zero_shot = 0.0
    for seed in range(seeds):
        pool, test = clip_like(n_classes, max(shots_list), seed)
        prior = (100 * test.features @ test.text.T).softmax(-1)
        zero_shot += accuracy(prior, test.labels) / seeds
        for i, shots in enumerate(shots_list):
            train = first_shots(pool, shots, n_classes)
            for method in METHODS:
                head = fit_head(train, method, [str(c) for c in range(n_classes)], {})
                rows[method][i] += accuracy(head.probabilities(test.features), test.labels) / seeds
        transduced = accuracy(transductive_probabilities(test.features, prior), test.labels)
        rows["transductive"] = [value + transduced / seeds for value in rows["transductive"]]
    for method, values in rows.items():
        label = "(no shots)" if method == "transductive" else ""
        print(f"  {method:14s}  {zero_shot:8.3f}  " + " ".join(f"{v:6.3f}" for v in values) + f" {label}")


def transductive_cost(n_windows: int, n_classes: int) -> None:
    pool, _ = clip_like(n_classes, n_windows // n_classes, seed=0)
    prior = (100 * pool.features @ pool.text.T).softmax(-1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    z = transductive_probabilities(pool.features, prior)
    elapsed = time.perf_counter() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(
        f"\ntransductive, {len(z)} windows x {n_classes} classes x {DIM}-d: {elapsed:.2f} s on "
        f"{torch.get_num_threads()} threads, peak memory +{grown:.0f} MiB; "
        f"accuracy {accuracy(prior, pool.labels):.3f} zero-shot -> {accuracy(z, pool.labels):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--windows", type=int, default=10_000)
    args = parser.parse_args()
    fit_times(args.classes, args.shots, args.repeats)
    accuracy_curves(args.classes, args.seeds)
    transductive_cost(args.windows, args.classes)


if __name__ == "__main__":
    main()
