"""Several models x several test sets in one run, with everything needed to trust and repeat the numbers."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from msclip.data import InputOptions
from msclip.errors import MSClipError
from msclip.evaluation.datasets import EvalSet, MissingDataset, resolve, with_reference_band_order
from msclip.evaluation.metrics import TOP_K_RETRIEVAL
from msclip.evaluation.runner import LOGIT_FACTOR, Evaluation, NothingReadable, evaluate_dataset
from msclip.models import MSClipModel, load_model
from msclip.models.checkpoint import checkpoint_sha256
from msclip.text import templates

log = logging.getLogger(__name__)

SEED = 0


@dataclass
class BenchmarkRun:
    """Results of every (model, dataset) pair, what could not be evaluated, and the run's settings."""

    evaluations: list[Evaluation] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    #: (file, reason) of every image of the test sets none of whose images could be read
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def load_entry(entry: str, random_init: bool, device: str | None, precision: str):
    """The model of a ``--models`` entry (``NAME`` or ``NAME=CHECKPOINT``); random-init models are the same
    in every run (the seed is fixed before each)."""
    name, checkpoint = parse_model(entry)
    torch.manual_seed(SEED)
    return load_model(name, checkpoint, random_init=random_init, device=device, precision=precision)  # type: ignore[arg-type]


def parse_model(entry: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME=CHECKPOINT``."""
    name, _, checkpoint = entry.partition("=")
    return name, checkpoint or None


def model_labels(entries: list[str]) -> list[str]:
    """A distinct table label per ``--models`` entry: its name, plus its checkpoint's file name (or path,
    when file names repeat too) where two entries share a name. The same entry twice is refused."""
    repeated = {e for e in entries if entries.count(e) > 1}
    if repeated:
        raise MSClipError(f"--models lists {sorted(repeated)[0]} twice; give each model once")
    parsed = [parse_model(e) for e in entries]
    names = [name for name, _ in parsed]
    labels = []
    for name, checkpoint in parsed:
        if names.count(name) == 1 or checkpoint is None:
            labels.append(name)
            continue
        files = [Path(c).name for n, c in parsed if n == name and c]
        shown = Path(checkpoint).name if files.count(Path(checkpoint).name) == 1 else checkpoint
        labels.append(f"{name} ({shown})")
    return labels


def model_settings(model: MSClipModel, label: str) -> dict:
    return {
        "name": model.spec.name,
        "label": label,
        "arch": model.spec.arch,
        "bands": list(model.bands),
        "input": "RGB composite B04 B03 B02 (8-bit, clipped)" if model.spec.is_rgb else "bands by name",
        "weights": f"random init (seed {SEED})" if model.weights == "random init" else model.weights,
        "checkpoint": str(model.checkpoint) if model.checkpoint else None,
        "checkpoint_sha256": checkpoint_sha256(model.checkpoint),
        "precision": model.precision,
    }


def dataset_settings(dataset: EvalSet) -> dict:
    return {
        "name": dataset.name,
        "root": dataset.root,
        "task": dataset.task,
        "n_samples": len(dataset.samples),
        "layout": dataset.layout,
        "classes": dataset.classes,
        "notes": dataset.notes,
    }


def run_benchmark(
    models: list[str],
    datasets: list[str],
    data_dir: str | Path = ".",
    template_set: str = "msclip",
    *,
    random_init: bool = False,
    device: str | None = None,
    precision: str = "fp32",
    options: InputOptions | None = None,
    use_cache: bool = True,
    reference_band_order: bool = False,
    **loader_options,
) -> BenchmarkRun:
    """Evaluate every model on every dataset; a missing or incompatible dataset, or a model that cannot be
    loaded, is recorded in ``missing``, not raised. ``reference_band_order`` reads the files as the
    reference evaluation does (EuroSAT: by position), to reproduce the published numbers."""
    from msclip import __version__

    options = options or InputOptions()
    prompts = templates(template_set)
    labels = model_labels(models)
    run = BenchmarkRun()
    found: list[EvalSet] = []
    for entry in datasets:
        try:
            dataset = resolve(entry, Path(data_dir), options.layout, options.bands)
        except MissingDataset as exc:
            run.missing.append(str(exc))
            continue
        found.append(with_reference_band_order(dataset) if reference_band_order else dataset)
    model_records = []
    for entry, label in zip(models, labels, strict=True):
        try:
            model = load_entry(entry, random_init, device, precision)
        except MSClipError as exc:  # e.g. weights that cannot be downloaded: the other models still run
            run.missing.append(f"{label}: {exc}")
            continue
        model_records.append(model_settings(model, label))
        for dataset in found:
            try:
                run.evaluations.append(
                    evaluate_dataset(
                        model, dataset, prompts, options, use_cache=use_cache, label=label, **loader_options
                    )
                )
            except NothingReadable as exc:
                run.missing.append(f"{label} / {exc}")
                run.unreadable.extend(exc.skipped)
            except MSClipError as exc:
                run.missing.append(f"{label} / {dataset.name}: {exc}")
        del model
    evaluated = {e.dataset for e in run.evaluations}
    run.settings = {
        "msclip_version": __version__,
        "torch_version": torch.__version__,
        "templates": {
            "set": template_set,
            "count": len(prompts),
            "sha256": hashlib.sha256("\n".join(prompts).encode()).hexdigest(),
        },
        "logits": f"{LOGIT_FACTOR:g} x cosine similarity",
        "retrieval_top_k": TOP_K_RETRIEVAL,
        "seed": SEED,
        "boa_offset": str(options.boa_offset),
        "reference_band_order": reference_band_order,
        "precision_requested": precision,  # each model's record holds the precision it ran in
        "models": model_records,
        "datasets": [dataset_settings(d) for d in found if d.name in evaluated],
    }
    return run
