"""Few-shot curves: accuracy of adaptation methods against the number of labelled shots per class.

Each dataset's images are embedded once per model. Shots come from the dataset's published training split
where it has one, and every method is scored on the whole test split. For each seed, every class's training
images are put in a seeded random order: its first ``s`` images are the shots for ``s`` shots (so 2 shots
extend the 1-shot draw). A dataset without a training split on disk falls back to drawing from its test
split: the images after the largest shot count are then that seed's test images, the same for every method
and shot count. Zero-shot is scored on the same test images (as 0 shots).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from msclip.io import atomic_write

if TYPE_CHECKING:
    from msclip.evaluation.datasets import EvalSet

ZERO_SHOT = "zero-shot"

#: A fixed test set: (N, D) embeddings and their labels (class indices, or a 0/1 matrix if multi-label).
TestSet = tuple[torch.Tensor, np.ndarray]


def shot_order(labels: np.ndarray, n_classes: int, seed: int) -> list[np.ndarray]:
    """Per class, its image indices in a random order fixed by ``seed``."""
    generator = np.random.default_rng(seed)
    return [generator.permutation(np.flatnonzero(labels == c)) for c in range(n_classes)]


def few_shot_accuracies(
    features: torch.Tensor,
    labels: np.ndarray,
    text: torch.Tensor,
    shots: Sequence[int],
    methods: Sequence[str],
    seeds: int,
    test_set: TestSet | None = None,
) -> pd.DataFrame:
    """One row per (seed, method, shots) with the test accuracy in ``score``. Shots are drawn from
    ``features``/``labels``; with a ``test_set`` (the test split) every method is scored on all of it and
    classes with fewer training images than the largest shot count are left out of the draws; without one,
    classes with too few images to keep one test image after the largest shot count are left out and each
    seed's remaining images are its test set. ``classes`` records how many classes were drawn."""
    from msclip.adapt import fit_head
    from msclip.adapt.methods import Shots
    from msclip.errors import MSClipError

    most = max(shots)
    rows = []
    for seed in range(seeds):
        order = shot_order(labels, len(text), seed)
        needed = most if test_set is not None else most + 1  # + one test image when held out
        usable = [c for c in range(len(text)) if len(order[c]) >= needed]
        if not usable:
            raise MSClipError(f"no class has the {needed} labelled images that {most} shots need")
        if test_set is None:
            held_out = np.concatenate([order[c][most:] for c in usable])
            test_features, truth = features[held_out], torch.as_tensor(labels[held_out])
        else:
            test_features, truth = test_set[0], torch.as_tensor(test_set[1])

        def accuracy(probabilities: torch.Tensor, truth=truth) -> float:
            return float((probabilities.argmax(-1) == truth).float().mean())

        base = {"seed": seed, "classes": len(usable), "metric": "accuracy"}
        zero_shot = (test_features @ text.T).softmax(-1)
        rows.append({**base, "method": ZERO_SHOT, "shots": 0, "score": accuracy(zero_shot)})
        for count in shots:
            train = np.concatenate([order[c][:count] for c in usable])
            drawn = Shots(features[train], torch.as_tensor(labels[train]), text)
            for method in methods:
                if method == ZERO_SHOT:
                    continue
                head = fit_head(drawn, method, [str(c) for c in range(len(text))], {}, seed=seed)
                score = accuracy(head.probabilities(test_features))
                rows.append({**base, "method": method, "shots": count, "score": score})
    return pd.DataFrame(rows)


#: Methods with a multi-label (one-vs-rest) form: scores per class, ranked by average precision.
MULTI_LABEL_METHODS = (ZERO_SHOT, "linear-probe", "tip-adapter", "knn")


def multi_label_draw(targets: np.ndarray, shots: int, seed: int) -> list[np.ndarray]:
    """Per class, its positive images in a random order fixed by ``seed`` (the first ``s`` are its shots)."""
    generator = np.random.default_rng(seed)
    return [generator.permutation(np.flatnonzero(targets[:, c])) for c in range(targets.shape[1])]


def multi_label_scores(
    method: str, train: torch.Tensor, train_targets: torch.Tensor, text: torch.Tensor, test: torch.Tensor
) -> torch.Tensor:
    """(test, classes) scores of a one-vs-rest head: logistic regressions, Tip-Adapter's logits with a
    multi-hot cache (alpha = beta = 1, nothing to search a multi-label accuracy on), or kNN vote shares."""
    from msclip.adapt.methods import fit_one_vs_rest, score_knn, tip_logits

    values = train_targets.float()
    if method == ZERO_SHOT:
        return test @ text.T
    if method == "linear-probe":
        head = fit_one_vs_rest(train, train_targets)
        return test @ head["weight"].T + head["bias"]
    if method == "tip-adapter":
        return tip_logits(test, text, train, values, 1.0, 1.0)
    k = max(1, min(5, int(values.sum(0).min())))
    return score_knn({"keys": train, "values": values}, {"k": k}, test)


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Macro average precision over the classes with at least one positive test image."""
    from sklearn.metrics import average_precision_score

    present = targets.any(axis=0)
    if not present.any():
        return float("nan")  # too few images left to test on
    return float(average_precision_score(targets[:, present], scores[:, present], average="macro"))


def few_shot_map(
    features: torch.Tensor,
    targets: np.ndarray,
    text: torch.Tensor,
    shots: Sequence[int],
    methods: Sequence[str],
    seeds: int,
    test_set: TestSet | None = None,
) -> pd.DataFrame:
    """Multi-label curves: for ``s`` shots every class contributes its first ``s`` positive images (with all
    their labels) to the training set; the test set is ``test_set`` (the test split) or, without one, the
    images never drawn at the largest count. One row per (seed, method, shots) with the test mAP in
    ``score``."""
    rows = []
    for seed in range(seeds):
        order = multi_label_draw(targets, max(shots), seed)
        if test_set is None:
            drawn_at_most = np.unique(np.concatenate([o[: max(shots)] for o in order]))
            held_out = np.setdiff1d(np.arange(len(targets)), drawn_at_most)
            test_features, test_targets = features[held_out], targets[held_out]
        else:
            test_features, test_targets = test_set
        base = {"seed": seed, "classes": targets.shape[1], "metric": "mAP"}
        for count in (0, *shots):
            train = (
                np.unique(np.concatenate([o[:count] for o in order])) if count else np.array([], dtype=int)
            )
            for method in methods:
                if (method == ZERO_SHOT) != (count == 0) or method not in MULTI_LABEL_METHODS:
                    continue
                scores = multi_label_scores(
                    method, features[train], torch.as_tensor(targets[train]), text, test_features
                )
                value = mean_average_precision(scores.numpy(), test_targets)
                rows.append({**base, "method": method, "shots": count, "score": value})
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of the score (accuracy, or mAP for multi-label sets) over seeds per
    (model, dataset, method, shots)."""
    keys = [k for k in ("model", "dataset", "metric", "method", "shots") if k in runs]
    grouped = runs.groupby(keys, sort=False)["score"]
    table = grouped.agg(["mean", "std", "count"]).reset_index()
    return table.rename(columns={"mean": "score_mean", "std": "score_std", "count": "seeds"})


def markdown(summary: pd.DataFrame, sources: dict[str, dict[str, str]] | None = None) -> str:
    """A table per dataset: rows (model, method), columns shots, cells mean ± std (%), under a line saying
    where its shots and test images came from."""
    parts = [
        "# Few-shot curves\n",
        "Accuracy (%) (mAP (%) for multi-label sets, one-vs-rest heads), mean ± std over seeds; 0 shots is"
        " zero-shot.\n",
    ]
    for dataset, table in summary.groupby("dataset", sort=False):
        cells = table.assign(
            cell=[
                f"{100 * m:.1f} ± {100 * (0 if np.isnan(s) else s):.1f}"
                for m, s in zip(table["score_mean"], table["score_std"], strict=True)
            ]
        )
        wide = cells.pivot_table(index=["model", "method"], columns="shots", values="cell", aggfunc="first")
        parts.append(f"\n## {dataset} ({table['metric'].iloc[0]})\n")
        if dataset in (sources or {}):
            where = (sources or {})[dataset]
            parts.append(f"Shots from: {where['shots from']}. Test set: {where['test set']}.\n")
        header = ["model", "method", *[str(c) for c in wide.columns]]
        parts.append("| " + " | ".join(header) + " |")
        parts.append("|" + "---|" * len(header))
        for (model, method), row in wide.iterrows():
            parts.append(
                "| "
                + " | ".join([model, method, *[str(v) if isinstance(v, str) else "" for v in row]])
                + " |"
            )
    return "\n".join(parts) + "\n"


def curve_plot(summary: pd.DataFrame, dataset: str, path: Path) -> None:
    """Accuracy against shots (log scale) per (model, method), zero-shot as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary[summary["dataset"] == dataset]
    figure, axis = plt.subplots(figsize=(6, 4))
    for (model, method), rows in table.groupby(["model", "method"], sort=False):
        label = f"{model} / {method}"
        if method == ZERO_SHOT:
            axis.axhline(100 * rows["score_mean"].iloc[0], linestyle="--", linewidth=1, label=label)
            continue
        std = rows["score_std"].fillna(0)
        axis.errorbar(
            rows["shots"], 100 * rows["score_mean"], yerr=100 * std, marker="o", capsize=3, label=label
        )
    axis.set_xscale("log", base=2)
    axis.set_xlabel("shots per class")
    axis.set_ylabel(f"{table['metric'].iloc[0]} (%)")
    axis.set_title(dataset)
    axis.legend(fontsize=7)
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=120, format="png"))
    plt.close(figure)


def run_few_shot(
    models: list[str],
    datasets: list[str],
    data_dir: str | Path,
    template_set: str,
    shots: Sequence[int],
    methods: Sequence[str],
    seeds: int,
    *,
    random_init: bool = False,
    device: str | None = None,
    precision: str = "fp32",
    options=None,
    use_cache: bool = True,
    **loader_options,
) -> tuple[pd.DataFrame, list[str], dict[str, dict[str, str]]]:
    """Per-seed accuracies of every (model, dataset, method, shots), what could not be evaluated, and per
    dataset where its shots and test images came from."""
    from msclip.data import InputOptions
    from msclip.errors import MSClipError
    from msclip.evaluation.benchmark import load_entry
    from msclip.evaluation.datasets import MissingDataset, MissingSplit, resolve
    from msclip.evaluation.runner import check_compatible, embed_set
    from msclip.text import class_embeddings, templates

    options = options or InputOptions()
    prompts = templates(template_set)
    missing: list[str] = []
    found: list[EvalSet] = []
    train_sets: dict[str, EvalSet | None] = {}
    for entry in datasets:
        try:
            found.append(resolve(entry, Path(data_dir), options.layout, options.bands))
        except MissingDataset as exc:
            missing.append(str(exc))
            continue
        try:
            train_sets[found[-1].name] = resolve(
                entry, Path(data_dir), options.layout, options.bands, "train"
            )
        except MissingDataset as exc:  # no training split, or its list names no image on disk
            train_sets[found[-1].name] = None
            if not isinstance(exc, MissingSplit):
                missing.append(f"training split: {exc}; shots drawn from the test split")
    sources = {d.name: shot_sources(d, train_sets[d.name]) for d in found}
    unsupported = [m for m in methods if m not in MULTI_LABEL_METHODS]
    if unsupported and any(d.task != "single" for d in found):
        missing.append(f"{', '.join(unsupported)}: no multi-label form; left out on multi-label sets")
    frames = []
    for entry in models:
        try:
            model = load_entry(entry, random_init, device, precision)
        except MSClipError as exc:
            missing.append(f"{entry}: {exc}")
            continue
        for dataset in found:
            splits = [s for s in (dataset, train_sets[dataset.name]) if s is not None]
            try:
                check_compatible(model, dataset, options)
                embedded = [embed_set(model, s, options, **loader_options) for s in splits]
                for kind, split, result in zip(("test", "training"), splits, embedded, strict=False):
                    if not result.indices:
                        raise MSClipError(f"none of its {len(split.samples)} {kind} images could be read")
            except MSClipError as exc:
                missing.append(f"{model.spec.name} / {dataset.name}: {exc}")
                continue
            missing.extend(
                f"{model.spec.name} / {dataset.name}: {reason}" for e in embedded for _, reason in e.skipped
            )
            text = class_embeddings(model, dataset.classes, prompts, use_cache=use_cache)
            curves = few_shot_accuracies if dataset.task == "single" else few_shot_map
            labelled = [
                (torch.from_numpy(e.logits), s.targets(e.indices))
                for s, e in zip(splits, embedded, strict=True)
            ]
            try:
                if len(labelled) == 1:  # no training split: shots held out of the test split per seed
                    runs = curves(*labelled[0], text, shots, methods, seeds)
                else:
                    runs = curves(*labelled[1], text, shots, methods, seeds, test_set=labelled[0])
            except MSClipError as exc:
                missing.append(f"{model.spec.name} / {dataset.name}: {exc}")
                continue
            frames.append(runs.assign(model=model.spec.name, dataset=dataset.name))
    columns = ["model", "dataset", "method", "shots", "seed", "classes", "metric", "score"]
    runs = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    return runs, missing, sources


def shot_sources(test: EvalSet, train: EvalSet | None) -> dict[str, str]:
    """Where a dataset's shots and test images come from, in words (summary.md, settings.json)."""
    test_split = f"test split ({test.split_source or 'every image: no test split file'})"
    if train is None:
        return {
            "shots from": "test split, held out per seed (no train split found)",
            "test set": f"the images of the {test_split} not drawn as shots at the largest count, per seed",
        }
    return {"shots from": f"train split ({train.split_source})", "test set": f"the whole {test_split}"}


def write_few_shot_outputs(
    runs: pd.DataFrame, folder: str | Path, settings: dict | None = None
) -> pd.DataFrame:
    """few_shot_runs.csv (per seed), few_shot.csv (mean, std), summary.md, settings.json (with each
    dataset's shot source), few_shot_<dataset>.png."""
    import json

    from msclip.io import write_table

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = settings or {}
    summary = summarise(runs)
    write_table(runs, folder / "few_shot_runs.csv")
    write_table(summary, folder / "few_shot.csv")
    text = markdown(summary, settings.get("datasets"))
    atomic_write(folder / "summary.md", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    settings_text = json.dumps(settings, indent=1)
    atomic_write(folder / "settings.json", lambda tmp: Path(tmp).write_text(settings_text, encoding="utf-8"))
    for dataset in summary["dataset"].unique():
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in dataset)
        curve_plot(summary, dataset, folder / f"few_shot_{safe}.png")
    return summary
