"""``load_model`` and :class:`MSClipModel`: one open_clip model, its input bands and its transform."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from msclip.bands import RGB
from msclip.errors import MSClipError
from msclip.models.checkpoint import download, load_into, read_state_dict, recorded_spec, to_open_clip_keys
from msclip.models.registry import DEFAULT_MODEL, ModelSpec, spec_for
from msclip.models.transforms import MultispectralTransform, RGBTransform
from msclip.models.widen import widen_patch_embedding

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]
Backend = Literal["torch", "onnx"]
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def best_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@dataclass
class MSClipModel:
    """An open_clip CLIP model that takes the bands of ``spec``; encoders return L2-normalised float32."""

    spec: ModelSpec
    clip: Any  # an open_clip CLIP / CustomTextCLIP module: its towers are reached by attribute
    tokenizer: Callable[[list[str]], torch.Tensor]
    transform: Callable
    device: str = "cpu"
    precision: Precision = "fp32"
    checkpoint: str | None = None
    image_backend: Callable[[torch.Tensor], torch.Tensor] | None = (
        None  # an ONNX Runtime encoder, when chosen
    )
    #: where the weights came from: a local file, a hub file, an open_clip tag or random init
    weights: str = ""

    @property
    def bands(self) -> tuple[str, ...]:
        return self.spec.bands

    @property
    def record(self) -> dict:
        """How embeddings were made, as embedding files record it (an index embeds queries alike)."""
        return {"model": self.spec.name, "bands": list(self.bands)}

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.precision]

    @property
    def logit_scale(self) -> float:
        return float(self.clip.logit_scale.detach().exp())

    @torch.no_grad()  # not inference_mode: CPU bf16 there copies weights per call and runs ~10x slower
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        if self.image_backend is not None:
            features = self.image_backend(images)
        else:
            features = self.clip.encode_image(images.to(self.device, self.dtype, non_blocking=True))
        return F.normalize(features.float(), dim=-1).cpu()

    @torch.no_grad()
    def encode_text(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        """Texts -> embeddings, batched by token length so little compute goes to padding (batches of 64
        prompts sorted by length: 15% quicker than 256 for 6 classes x 50 templates on 2 cores)."""
        tokens = self.tokenizer(texts)
        lengths = (tokens != 0).sum(dim=1)
        order = torch.argsort(lengths, stable=True)
        chunks = []
        for start in range(0, len(texts), batch_size):
            chunk = order[start : start + batch_size]
            chunks.append((chunk, self._encode_tokens(tokens[chunk].to(self.device))))
        out = torch.empty(len(texts), chunks[0][1].shape[-1])
        for chunk, features in chunks:
            out[chunk] = F.normalize(features.float(), dim=-1).cpu()
        return out

    def _encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """open_clip's text tower, cut after the longest prompt of the batch.

        Exact: the causal mask stops a token from seeing later positions, and pooling reads the
        end-of-text token, so the padding after it never changes the result (tested).
        """
        clip = self.clip
        if not _has_plain_text(clip):
            return clip.encode_text(tokens)
        from open_clip.transformer import text_global_pool

        length = int((tokens != 0).sum(dim=1).max())
        tokens = tokens[:, :length]
        cast = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(tokens).to(cast) + clip.positional_embedding[:length].to(cast)
        x = clip.transformer(x, attn_mask=clip.attn_mask[:length, :length])
        x = clip.ln_final(x)
        x = text_global_pool(x, tokens, clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None))
        return (
            clip.text_projection(x)
            if isinstance(clip.text_projection, torch.nn.Linear)
            else x @ clip.text_projection
        )


def _has_plain_text(clip: torch.nn.Module) -> bool:
    """open_clip's CLIP class with a causal text tower pooled at the end-of-text token."""
    return (
        hasattr(clip, "token_embedding")
        and getattr(clip, "text_pool_type", None) == "argmax"
        and getattr(clip, "attn_mask", None) is not None
    )


def resolve_spec(
    name: str | None,
    checkpoint: str | None = None,
    bands: tuple[str, ...] | None = None,
    pretrained: str | None = None,
) -> ModelSpec:
    """The model ``name`` asks for; without a name, the one ``checkpoint`` records, else the default model."""
    recorded = recorded_spec(checkpoint) if name is None and checkpoint else None
    return recorded or spec_for(name or DEFAULT_MODEL, bands, pretrained)


def load_model(
    name: str | None = None,
    checkpoint: str | None = None,
    *,
    bands: tuple[str, ...] | list[str] | None = None,
    pretrained: str | None = None,
    random_init: bool = False,
    widen_init: Literal["zeros", "mean"] = "zeros",
    device: str | None = None,
    precision: Precision = "fp32",
    backend: Backend = "torch",
    revision: str | None = None,
    sha256: str | None = None,
) -> MSClipModel:
    """Build a registered model (or any open_clip architecture widened to ``bands``) with its weights.

    ``name`` None takes the model that ``checkpoint`` records (``msclip train`` exports do), else
    Llama3-MS-CLIP-Base. Weights come from ``checkpoint`` (official layout, open_clip keys or
    safetensors), else the model's Hugging Face file, else its open_clip pretrained tag (widened when
    the bands are not RGB), else random (``random_init``: from torch's global generator, for tests,
    benchmarks and training). A model with no weights anywhere (``msclip-tiny``) gets fixed random
    weights, so that separate commands (embed, then index search) use the same model.

    ``precision="auto"`` is bf16 where the device computes it natively (CPUs with AVX512_BF16 or AMX,
    CUDA GPUs with bf16), fp32 elsewhere; the model's ``precision`` says which. bf16 casts the weights (both
    towers): against bf16 autocast it agreed as well with fp32 and ran ~2x faster (README).
    """
    from msclip.models.openclip_import import open_clip_for
    from msclip.runtime import fit_threads_to_cores, resolve_precision

    spec = resolve_spec(name, checkpoint, tuple(bands) if bands else None, pretrained)
    open_clip = open_clip_for(spec.arch)
    device = device or best_device()
    if precision not in (*_DTYPES, "auto"):
        raise MSClipError(f"unknown precision {precision!r}; use auto, fp32, bf16 or fp16")
    precision = resolve_precision(precision, device, backend)  # type: ignore[assignment]
    if device == "cpu":
        fit_threads_to_cores()
    if precision == "fp16" and device == "cpu":
        raise MSClipError("fp16 needs a GPU; on the CPU use --precision bf16")
    given = checkpoint
    if checkpoint is None and spec.hf_hub_id and not random_init:
        checkpoint = download(spec, revision=revision, sha256=sha256)
    tag = None if (checkpoint or random_init) else spec.open_clip_tag
    weightless = not (checkpoint or tag or random_init)  # e.g. msclip-tiny: the same weights in every process
    if checkpoint:
        state = to_open_clip_keys(read_state_dict(checkpoint))
        try:
            clip, preprocess = _build_with_checkpoint(open_clip, spec, state, str(checkpoint), widen_init)
        except MSClipError as exc:
            if name is not None:
                raise
            raise MSClipError(
                f"{exc}; without --model it was read as {spec.name}: pass --model with the model it was trained as"
            ) from None
    else:
        with _seeded(0) if weightless else contextlib.nullcontext():
            clip, preprocess = _build(open_clip, spec, tag, widen_init)
    clip = clip.to(device=device, dtype=_DTYPES[precision]).eval()
    if device == "cpu" and precision == "bf16":
        from msclip.models import cpu_bf16

        if cpu_bf16.available():
            cpu_bf16.pack_blocks(clip)  # oneDNN packed products: the same outputs up to bf16 rounding
    transform = (
        RGBTransform(preprocess)
        if spec.is_rgb
        else MultispectralTransform(spec.mean, spec.std, spec.image_size)
    )
    weights = _weights_origin(spec, given, checkpoint, tag, random_init, revision)
    model = MSClipModel(
        spec,
        clip,
        open_clip.get_tokenizer(spec.arch),
        transform,
        device,
        precision,
        checkpoint,
        weights=weights,
    )
    if backend == "onnx":
        from msclip.models.onnx_backend import attach_onnx

        attach_onnx(model)
    elif backend != "torch":
        raise MSClipError(f"unknown backend {backend!r}; use torch or onnx")
    return model


def _weights_origin(
    spec: ModelSpec, given: str | None, checkpoint: str | None, tag: str | None, random_init: bool, revision
) -> str:
    """What was loaded, in words a settings file keeps: a local file, a hub file, a tag, or random init."""
    if given:
        return f"local {'safetensors' if str(given).endswith('.safetensors') else '.pt'} checkpoint"
    if checkpoint:
        return f"hf-hub:{spec.hf_hub_id}/{spec.hf_filename}@{revision or spec.hf_revision or 'main'}"
    if tag:
        return spec.weight_source
    return "random init" if random_init else "fixed random init (seed 0)"


@contextlib.contextmanager
def _seeded(seed: int):
    """Run with torch's generator seeded, then give the caller its own generator state back."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _build(open_clip, spec: ModelSpec, tag: str | None, widen_init) -> tuple[Any, Any]:
    """open_clip's model for ``spec`` (with its ``tag`` weights, if any) widened to the spec's bands, and
    open_clip's preprocessing."""
    try:
        with _quiet_root_logger():
            clip, _, preprocess = open_clip.create_model_and_transforms(spec.arch, pretrained=tag)
    except RuntimeError as exc:  # open_clip's failed download of pretrained weights
        raise MSClipError(
            f"cannot load open_clip weights {spec.arch}/{tag} ({exc}); offline? pass --checkpoint"
        ) from exc
    if spec.bands != RGB:
        _widen(clip, spec.bands, widen_init)
    return clip, preprocess


def _build_with_checkpoint(
    open_clip, spec: ModelSpec, state: dict, source: str, widen_init
) -> tuple[Any, Any]:
    """The model holding the checkpoint's tensors themselves (a memory-mapped file is not copied), built
    without the random initialisation that they replace: ~3 s of a ViT-B/16 start on 2 cores."""
    with _ParametersUninitialised():
        clip, preprocess = _build(open_clip, spec, None, widen_init)
    load_into(clip, state, source, assign=True)
    return clip, preprocess


class _ParametersUninitialised(TorchFunctionMode):
    """Skips the initialisation of parameters (``torch.nn.init`` and the tensors' random fills), for a model
    whose every parameter a strict load then replaces; buffers outside the state dict are made as usual.

    A torch function mode holds for the thread that enters it only. (The meta device would skip the
    allocations too, but its kernels for ordinary operations (a tensor times a number) are Python references
    whose first call imports torch._dynamo, ~1.4 s.)
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor")  # torch.nn.init passes it by keyword
        if isinstance(target, torch.nn.Parameter) and _is_initialiser(func):
            return target
        return func(*args, **kwargs)


_RANDOM_FILLS = frozenset({"uniform_", "normal_", "trunc_normal_", "bernoulli_", "exponential_", "random_"})


def _is_initialiser(func) -> bool:
    return (
        getattr(func, "__module__", None) == "torch.nn.init" or getattr(func, "__name__", "") in _RANDOM_FILLS
    )


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def _widen(clip: Any, bands: tuple[str, ...], init: Literal["zeros", "mean"]) -> None:
    conv = clip.visual.conv1
    widened = torch.nn.Conv2d(
        len(bands), conv.out_channels, conv.kernel_size, conv.stride, bias=conv.bias is not None
    )
    with torch.no_grad():
        widened.weight.copy_(widen_patch_embedding(conv.weight, bands, init))
        if conv.bias is not None and widened.bias is not None:
            widened.bias.copy_(conv.bias)
    clip.visual.conv1 = widened


@dataclass(frozen=True)
class ModelArgs:
    """What :func:`load_model` needs for inference, as plain data (a cluster ships it to its workers)."""

    name: str | None = None  # None: what the checkpoint records, else Llama3-MS-CLIP-Base
    checkpoint: str | None = None
    device: str | None = None
    precision: Precision = "fp32"
    backend: Backend = "torch"
    revision: str | None = None
    sha256: str | None = None

    def load(self) -> MSClipModel:
        return load_model(
            self.name,
            self.checkpoint,
            device=self.device,
            precision=self.precision,
            backend=self.backend,
            revision=self.revision,
            sha256=self.sha256,
        )
