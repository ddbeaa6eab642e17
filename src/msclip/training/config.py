"""Training configuration: defaults < YAML file < command-line overrides; the resolved dict is saved with
every checkpoint so a run can always be told apart and repeated."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from msclip.bands import S2_10
from msclip.errors import MSClipError

#: Reference learning rate of the patch embedding; the rest of the model trains at ``lr_rest_factor`` x it.
REFERENCE_LR = 3.76e-5


@dataclass
class TrainConfig:
    """Everything a run needs. Field names are the YAML keys and the ``--flags`` of ``msclip train``."""

    # model: start from an open_clip RGB tag (widened), the official checkpoint, or one of ours
    model: str = "ViT-B-16"
    model_bands: list[str] | None = field(
        default_factory=lambda: list(S2_10)
    )  # the model's; none: the arch's
    pretrained: str | None = "laion2b_s34b_b88k"
    checkpoint: str | None = None
    random_init: bool = False
    widen_init: str = "zeros"
    temperature: float | None = 0.07  # reset the learnable temperature at the start; None keeps the model's
    # data
    data: str | None = None  # table (.csv/.parquet), SSL4EO-S12 v1.1 Zarr folder/file, or WebDataset shards
    data_format: str = "auto"  # auto | table | ssl4eo | webdataset
    captions: str | None = None  # SSL4EO-S12 caption file or folder (CSV/Parquet)
    val_data: str | None = None
    val_fraction: float = 0.0  # held-out share of ``data`` when no ``val_data``
    zeroshot: list[str] | None = (
        None  # also run the zero-shot benchmark on these sets (``msclip evaluate`` names)
    )
    zeroshot_data_dir: str = "."
    zeroshot_templates: str = "msclip"
    image_column: str = "image"
    caption_column: str = "caption"
    layout: str | None = None
    input_bands: list[str] | None = None  # the files' channels, as ``--input-bands`` of every command
    boa_offset: str = "auto"
    crop_scale: list[float] | None = None  # RandomResizedCrop area range; None: plain random crop
    flips: bool = True
    samples_per_epoch: int | None = None  # WebDataset only: its length is unknown
    # optimisation
    preset: str = "full"  # patch-embed | visual | visual-attn | lock-text | full
    lr: float = REFERENCE_LR
    lr_rest_factor: float = 0.1
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-6
    warmup_steps: int = 500
    steps: int | None = None  # total optimiser steps; default: epochs x steps per epoch
    epochs: int = 1
    batch_size: int = 256  # global contrastive batch (all ranks together)
    grad_cache_chunk: int | None = None  # per-rank sub-batch for GradCache; None: whole batch at once
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; weights stay fp32)
    grad_clip: float | None = 1.0
    seed: int = 0
    deterministic: bool = False
    device: str | None = None
    workers: int = 0
    # outputs
    output: str = "runs/msclip-train"
    save_every: int = 1000
    keep_checkpoints: int = 3
    val_every: int = 1000
    log_every: int = 10
    resume: str | None = None  # a checkpoint path, or "auto" for the latest in ``output``

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
#: Old option names still read (YAML keys and flags), each with a deprecation note: ``bands`` named the
#: model's bands here while every other command's ``--bands`` names the files' channels.
RENAMED = {"bands": "model_bands"}


def list_fields() -> set[str]:
    """Names of the fields that hold lists (so the CLI can take several values)."""
    return {name for name, f in FIELDS.items() if "list" in str(f.type)}


def make_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults, then the YAML file's keys, then ``overrides``."""
    values: dict = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise MSClipError(f"cannot read config {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise MSClipError(f"config {path} must be a mapping of option: value")
        values.update({k.replace("-", "_"): v for k, v in loaded.items()})
    values.update(overrides or {})
    values = _renamed(values)
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise MSClipError(f"unknown training option(s): {', '.join(unknown)}")
    config = TrainConfig(**values)
    check(config)
    return config


def _renamed(values: dict) -> dict:
    """``values`` with old option names under their new ones (a FutureWarning each; the new name wins)."""
    for old, new in RENAMED.items():
        if old in values:
            warnings.warn(
                f"training option {old} is deprecated: use {new} (--{new.replace('_', '-')}); "
                "--input-bands names the files' channels",
                FutureWarning,
                stacklevel=3,
            )
            value = values.pop(old)
            values.setdefault(new, value)
    return values


def check(config: TrainConfig) -> None:
    """Reject settings that cannot work, with one clear line each."""
    from msclip.training.params import PRESETS

    if config.preset not in PRESETS:
        raise MSClipError(f"unknown preset {config.preset!r}; use {', '.join(PRESETS)}")
    if config.widen_init not in ("zeros", "mean"):
        raise MSClipError(f"unknown widen_init {config.widen_init!r}; use zeros or mean")
    if config.precision not in ("fp32", "bf16", "fp16"):
        raise MSClipError(f"unknown precision {config.precision!r}; use fp32, bf16 or fp16")
    if config.batch_size < 2:
        raise MSClipError("batch_size must be at least 2 (contrastive loss needs negatives)")
    if config.grad_cache_chunk is not None and config.grad_cache_chunk < 1:
        raise MSClipError("grad_cache_chunk must be a positive number of samples")
    if not 0 <= config.val_fraction < 1:
        raise MSClipError("val_fraction must be in [0, 1)")


def save_config(config: TrainConfig, path: str | Path) -> None:
    from msclip.io import atomic_write

    text = yaml.safe_dump(config.to_dict(), sort_keys=False)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
