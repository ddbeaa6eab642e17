"""The training loop: one :class:`Trainer` per process (torchrun starts one per GPU), plain PyTorch DDP."""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import random
import time
from pathlib import Path
from typing import Any, Literal, cast

import torch
from torch.utils.data import DataLoader

from msclip.data import InputOptions, collate_records
from msclip.errors import MSClipError
from msclip.io import atomic_write
from msclip.models import load_model
from msclip.training import checkpoints
from msclip.training.config import TrainConfig, save_config
from msclip.training.data import (
    CaptionedChips,
    StepSampler,
    TableSource,
    skipped_in,
    split_indices,
    train_transform,
)
from msclip.training.distributed import Env, all_gather, barrier, setup
from msclip.training.loss import contrastive_step, make_loss
from msclip.training.metrics import retrieval_recall
from msclip.training.params import apply_preset, param_groups, warmup_cosine

log = logging.getLogger(__name__)

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
MAX_LOGIT_SCALE = math.log(100.0)  # as open_clip: the temperature never drops below 0.01


def detect_format(data: str, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    if ".tar" in data or "{" in data:
        return "webdataset"
    if data.endswith((".csv", ".parquet")):
        return "table"
    return "ssl4eo"


class Trainer:
    """Builds model, data, optimiser and schedule from a :class:`TrainConfig`; ``run()`` trains."""

    def __init__(self, config: TrainConfig, progress: bool = True):
        self.config = config
        self.progress = progress
        self.env: Env = setup(config.device)
        if config.precision == "fp16" and self.env.device.type != "cuda":
            raise MSClipError("fp16 training needs a GPU; on the CPU use precision bf16")
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.model = load_model(
            config.model,
            config.checkpoint,
            bands=config.model_bands,
            pretrained=config.pretrained,
            random_init=config.random_init,
            widen_init=cast(Literal["zeros", "mean"], config.widen_init),
            device=str(self.env.device),
        )
        self.clip = self.model.clip.train()
        if config.temperature:
            with torch.no_grad():
                self.clip.logit_scale.fill_(math.log(1.0 / config.temperature))
        trainable = apply_preset(self.clip, config.preset)
        log.info("preset %s: %.1f M trainable parameters", config.preset, trainable / 1e6)
        self.net = self.clip
        if self.env.world_size > 1:
            ids = [self.env.device.index] if self.env.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.clip, device_ids=ids)
        self.optimizer = torch.optim.AdamW(
            param_groups(self.clip, config.lr, config.lr_rest_factor, config.weight_decay),
            betas=(config.betas[0], config.betas[1]),
            eps=config.eps,
        )
        self.step = self.epoch = self.batch_in_epoch = 0
        self.train_set, self.val_set = self._datasets()
        self.steps_per_epoch = self._steps_per_epoch()
        self.total_steps = config.steps or config.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(config.warmup_steps, self.total_steps)
        )
        self.scaler = torch.amp.GradScaler(self.env.device.type, enabled=config.precision == "fp16")
        self.loss_fn = make_loss(self.env.rank, self.env.world_size)
        # table rows that give no pair are named from the start (they are never drawn)
        dropped = (getattr(getattr(d, "source", None), "dropped", []) for d in (self.train_set, self.val_set))
        self.skipped: list[str] = list(dict.fromkeys(m for messages in dropped for m in messages))
        self.output = Path(config.output)
        self.checkpoint_dir = self.output / "checkpoints"
        resume = self._resume_path(config.resume) if config.resume else None
        if resume:
            self.load(resume)

    # ------------------------------------------------------------------ data

    def _input_options(self) -> InputOptions:
        c = self.config
        return InputOptions(c.layout, tuple(c.input_bands) if c.input_bands else None, c.boa_offset)

    def _source(self, path: str, fmt: str):
        if fmt == "table":
            c = self.config
            return TableSource(path, c.image_column, c.caption_column, self._input_options())
        if fmt == "ssl4eo":
            from msclip.training.ssl4eo import SSL4EOSource

            return SSL4EOSource(path, self.config.captions)
        raise MSClipError(f"unknown data format {fmt!r}; use table, ssl4eo or webdataset")

    def _datasets(self):
        c = self.config
        if not c.data:
            raise MSClipError(
                "no training data: pass --data (a table, SSL4EO-S12 Zarr files or WebDataset shards)"
            )
        fmt = detect_format(c.data, c.data_format)
        augment = train_transform(self.model, c.crop_scale, c.flips)
        options = self._input_options()
        bands = self.model.bands

        def chips(source, indices=None, train=True):
            transform = augment if train else self.model.transform
            return CaptionedChips(source, bands, transform, options, indices, c.seed, augment=train)

        val = None
        if fmt == "webdataset":
            from msclip.training.shards import ShardChips

            train = ShardChips(c.data, bands, augment, options, self._samples_per_worker(), c.seed)
        else:
            source = self._source(c.data, fmt)
            train_idx, val_idx = split_indices(len(source), 0.0 if c.val_data else c.val_fraction, c.seed)
            train = chips(source, train_idx)
            val = chips(source, val_idx, train=False) if val_idx else None
        if c.val_data:
            val = chips(self._source(c.val_data, detect_format(c.val_data)), train=False)
        return train, val

    def _steps_per_epoch(self) -> int:
        if isinstance(self.train_set, CaptionedChips):
            return self._sampler().steps_per_epoch
        return self._shard_steps_per_epoch()

    def _shard_steps_per_epoch(self) -> int:
        c = self.config
        if not c.samples_per_epoch and not c.steps:
            raise MSClipError("WebDataset shards have no known length: give samples_per_epoch or steps")
        return max(1, (c.samples_per_epoch or (c.steps or 0) * c.batch_size) // c.batch_size)

    def _samples_per_worker(self) -> int:
        """Shard samples each DataLoader worker of each rank yields per epoch: whole local batches, enough
        for every step of the epoch."""
        workers = max(1, self.config.workers)
        local = self.config.batch_size // self.env.world_size
        return math.ceil(self._shard_steps_per_epoch() / workers) * local

    def _sampler(self) -> StepSampler:
        env = self.env
        return StepSampler(
            len(self.train_set), self.config.batch_size, env.rank, env.world_size, self.config.seed, self.epoch,
            self.batch_in_epoch,
        )  # fmt: skip

    def _loader(self) -> DataLoader:
        options: dict[str, Any] = {
            "num_workers": self.config.workers,
            "pin_memory": self.env.device.type == "cuda",
        }
        if isinstance(self.train_set, CaptionedChips):
            return DataLoader(
                self.train_set, batch_sampler=self._sampler(), collate_fn=collate_records, **options
            )
        self.train_set.set_epoch(self.epoch)
        local = self.config.batch_size // self.env.world_size
        return DataLoader(
            self.train_set, batch_size=local, drop_last=True, collate_fn=collate_records, **options
        )

    # ------------------------------------------------------------------ training

    def _autocast(self):
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.env.device.type, dtype=_DTYPES[self.config.precision])

    def train_step(self, batch: dict) -> float:
        """One optimiser step on one (per-rank) batch; returns the global-batch loss."""
        images = batch["image"].to(self.env.device, non_blocking=True)
        tokens = self.model.tokenizer(batch["caption"]).to(self.env.device)
        self.optimizer.zero_grad(set_to_none=True)
        loss = contrastive_step(
            self.net,
            self.loss_fn,
            images,
            tokens,
            self.config.grad_cache_chunk,
            self._autocast,
            self.scaler.scale,
        )
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.last_lrs = {f"lr/{g['name']}": g["lr"] for g in self.optimizer.param_groups}  # used this step
        self.scheduler.step()
        with torch.no_grad():
            self.clip.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        return loss

    def run(self, max_steps: int | None = None) -> dict:
        """Train until the configured number of steps (or ``max_steps`` more); returns the last figures."""
        from tqdm import tqdm

        stop = self.total_steps if max_steps is None else min(self.total_steps, self.step + max_steps)
        main = self.env.is_main
        if main:
            self.output.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.output / "config.yaml")
        logger = RunLogger(self.output, self.step) if main else None
        bar = tqdm(
            total=self.total_steps, initial=self.step, disable=not (self.progress and main), desc="train"
        )
        summary: dict = {"steps": self.step}
        try:
            while self.step < stop:
                started, before = time.perf_counter(), self.step
                for batch in self._loader():
                    self.skipped.extend(skipped_in(batch))
                    loss = self.train_step(batch)
                    self.step += 1
                    self.batch_in_epoch += 1
                    epoch_done = self.batch_in_epoch >= self.steps_per_epoch
                    if epoch_done:
                        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                    elapsed, started = time.perf_counter() - started, time.perf_counter()
                    summary = {
                        "step": self.step,
                        "loss": loss,
                        "samples_per_s": self.config.batch_size / elapsed,
                    }
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}")
                    self._after_step(summary, logger)
                    if self.step >= stop or epoch_done:
                        break
                else:  # the data ran out before steps_per_epoch (WebDataset shards): next epoch
                    if self.step == before:
                        raise MSClipError("the training data gave no batch in a whole epoch")
                    self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            summary["finished"] = self.step >= self.total_steps
            if summary["finished"]:
                summary.update(self._finish(logger))
            summary["skipped"] = sorted(set().union(*all_gather(self.env, self.skipped)))
        finally:
            bar.close()
            if logger:
                logger.close()
        return summary

    def _after_step(self, summary: dict, logger: RunLogger | None) -> None:
        c = self.config
        if logger and (self.step % c.log_every == 0 or self.step == 1):
            values = {**summary, "epoch": self.epoch, "logit_scale": self.model.logit_scale, **self.last_lrs}
            logger.log("train", self.step, values)
        if c.save_every and self.step % c.save_every == 0:
            self.save()
        if c.val_every and self.step % c.val_every == 0:
            summary.update(self._validate_and_log(logger))

    def _validate_and_log(self, logger: RunLogger | None) -> dict:
        if self.val_set is None and not self.config.zeroshot:
            return {}
        metrics = self.validate()
        if logger:
            logger.log("val", self.step, metrics)
        return metrics

    def _finish(self, logger: RunLogger | None) -> dict:
        """Last validation (unless this step just had one), last checkpoint, export."""
        out = {}
        if not (self.config.val_every and self.step % self.config.val_every == 0):
            out.update(self._validate_and_log(logger))
        if self.config.save_every and self.step % self.config.save_every:
            self.save()
        if self.env.is_main:
            official, tensors = checkpoints.export_model(self.clip, self.model.spec, self.output)
            out.update({"exported": str(official), "safetensors": str(tensors)})
        barrier(self.env)
        return out

    @torch.no_grad()
    def validate(self) -> dict:
        """Recall@1/5/10 both ways on the held-out pairs, and the zero-shot benchmark when configured
        (on rank 0; the others wait)."""
        metrics: dict = {}
        self.clip.eval()
        if self.env.is_main and self.val_set is not None:
            loader = DataLoader(
                self.val_set, batch_size=64, num_workers=self.config.workers, collate_fn=collate_records
            )
            images: list[torch.Tensor] = []
            texts: list[str] = []
            owners: list[int] = []
            for batch in loader:
                self.skipped.extend(s for s in skipped_in(batch) if s not in self.skipped)
                if batch["image"] is None:
                    continue
                for captions in batch["captions"]:
                    owners.extend([owners[-1] + 1 if owners else 0] * len(captions))
                    texts.extend(captions)
                images.append(self.model.encode_image(batch["image"]))
            if images:  # every held-out chip may be unusable (each is named in the report)
                text_features = self.model.encode_text(texts)
                metrics = retrieval_recall(torch.cat(images), text_features, torch.tensor(owners))
        if self.env.is_main and self.config.zeroshot:
            metrics.update(self._zeroshot())
        self.clip.train()
        barrier(self.env)
        return metrics

    def _zeroshot(self) -> dict:
        """The zero-shot benchmark of ``msclip evaluate`` on the configured sets (no embedding cache: the
        text tower changes as it trains)."""
        from msclip.evaluation import evaluate_dataset, resolve
        from msclip.text import templates

        c = self.config
        prompts = templates(c.zeroshot_templates)
        out = {}
        for entry in c.zeroshot or []:
            dataset = resolve(
                entry, c.zeroshot_data_dir, c.layout, tuple(c.input_bands) if c.input_bands else None
            )
            result = evaluate_dataset(self.model, dataset, prompts, self._input_options(), use_cache=False)
            out.update({f"{dataset.name}/{k}": v for k, v in result.summary.items()})
        return out

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict:
        return {
            "model": self.clip.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "rng": checkpoints.rng_state(),
            "config": self.config.to_dict(),
        }

    def save(self) -> Path:
        path = self.checkpoint_dir / f"step_{self.step:08d}.pt"
        if self.env.is_main:
            checkpoints.save_training_state(path, self.state())
            checkpoints.prune(self.checkpoint_dir, self.config.keep_checkpoints)
        return path

    def load(self, path: str | Path) -> None:
        """Restore model, optimiser, schedule, scaler, data position and RNG from a training checkpoint."""
        state = checkpoints.load_training_state(path)
        self.clip.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        checkpoints.set_rng_state(state["rng"])

    def _resume_path(self, resume: str) -> Path | None:
        """The checkpoint to resume from; ``auto`` takes the run's latest, or none (a fresh start, so a
        requeued job can always pass ``--resume auto``)."""
        if resume != "auto":
            return Path(resume)
        found = checkpoints.checkpoints_in(self.checkpoint_dir)
        return found[-1] if found else None


class RunLogger:
    """Rows to ``train_log.csv`` / ``val_log.csv`` and scalars to TensorBoard (``tensorboard/``).

    A run that starts at ``step`` (resumed from its checkpoint, or from 0) drops what was logged after it,
    so the steps a killed run did past its last checkpoint are logged once, by the run that redoes them.
    """

    def __init__(self, folder: Path, step: int = 0):
        self.folder = folder
        for kind in ("train", "val"):
            _drop_rows_after(folder / f"{kind}_log.csv", step)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer: SummaryWriter | None = SummaryWriter(
                str(folder / "tensorboard"), purge_step=step + 1
            )
        except ImportError:  # the train extra is not installed: CSV only
            self.writer = None

    def log(self, kind: str, step: int, values: dict) -> None:
        path = self.folder / f"{kind}_log.csv"
        new = not path.exists()
        with path.open("a", newline="") as handle:
            row = {"step": step, **{k: v for k, v in values.items() if k != "step"}}
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.writer:
            for key, value in values.items():
                if isinstance(value, int | float) and key != "step":
                    self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def _drop_rows_after(path: Path, step: int) -> None:
    """Keep the header and the rows of steps up to ``step`` (the step column comes first)."""
    if not path.exists():
        return
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    kept = rows[:1] + [row for row in rows[1:] if int(row[0]) <= step]
    if len(kept) < len(rows):
        atomic_write(path, lambda tmp: _write_rows(tmp, kept))


def _write_rows(path: str, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def train(config: TrainConfig, progress: bool = True) -> dict:
    """Train (or resume) as configured; returns the last figures and the exported model's paths."""
    return Trainer(config, progress).run()
