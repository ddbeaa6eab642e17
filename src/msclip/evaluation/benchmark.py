"""Several models x several test sets in one run, with everything needed to trust and repeat the numbers."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from msclip.data import InputOptions
from msclip.errors import MSClipError
from msclip.evaluation.datasets import EvalSet, MissingDataset, resolve
from msclip.evaluation.metrics import TOP_K_RETRIEVAL
from msclip.evaluation.runner import LOGIT_FACTOR, Evaluation, evaluate_dataset
from msclip.models import MSClipModel, load_model
from msclip.text import templates

log = logging.getLogger(__name__)

SEED = 0


@dataclass
class BenchmarkRun:
    """Results of every (model, dataset) pair, what could not be evaluated, and the run's settings."""

    evaluations: list[Evaluation] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)


def parse_model(entry: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME=CHECKPOINT``."""
    name, _, checkpoint = entry.partition("=")
    return name, checkpoint or None


def file_sha256(path: str | None) -> str | None:
    """Hash of a checkpoint file, so a table can be traced to the exact weights."""
    if not path or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_settings(model: MSClipModel, random_init: bool) -> dict:
    return {
        "name": model.spec.name,
        "arch": model.spec.arch,
        "bands": list(model.bands),
        "input": "RGB composite B04 B03 B02 (8-bit, clipped)" if model.spec.is_rgb else "bands by name",
        "weights": f"random init (seed {SEED})"
        if random_init and not model.checkpoint
        else model.spec.weight_source,
        "checkpoint": str(model.checkpoint) if model.checkpoint else None,
        "checkpoint_sha256": file_sha256(model.checkpoint),
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
    **loader_options,
) -> BenchmarkRun:
    """Evaluate every model on every dataset; a missing or incompatible dataset, or a model that cannot be
    loaded, is recorded in ``missing``, not raised."""
    from msclip import __version__

    options = options or InputOptions()
    prompts = templates(template_set)
    run = BenchmarkRun()
    found: list[EvalSet] = []
    for entry in datasets:
        try:
            found.append(resolve(entry, Path(data_dir), options.layout, options.bands))
        except MissingDataset as exc:
            run.missing.append(str(exc))
    model_records = []
    for entry in models:
        name, checkpoint = parse_model(entry)
        torch.manual_seed(SEED)  # random-init models are the same in every run
        try:
            model = load_model(
                name,
                checkpoint,
                random_init=random_init,
                device=device,
                precision=precision,  # type: ignore[arg-type]
            )
        except MSClipError as exc:  # e.g. weights that cannot be downloaded: the other models still run
            run.missing.append(f"{name}: {exc}")
            continue
        model_records.append(model_settings(model, random_init))
        for dataset in found:
            try:
                run.evaluations.append(
                    evaluate_dataset(model, dataset, prompts, options, use_cache=use_cache, **loader_options)
                )
            except MSClipError as exc:
                run.missing.append(f"{model.spec.name} / {dataset.name}: {exc}")
        del model
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
        "precision_requested": precision,  # each model's record holds the precision it ran in
        "models": model_records,
        "datasets": [dataset_settings(d) for d in found],
    }
    return run
