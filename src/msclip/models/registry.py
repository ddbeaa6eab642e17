"""Named models, in the spirit of open_clip's pretrained registry: everything needed to build and feed one.

Configs are data: one JSON file per registered model in ``resources/models`` (architecture, bands, licence,
weights and the hub revision they were written against). ``spec_for`` also builds a spec on the fly for any open_clip architecture widened to
any list of Sentinel-2 bands, e.g. ``spec_for("ViT-B-32", bands=S2_10)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from typing import TYPE_CHECKING

from msclip.bands import RGB
from msclip.errors import MSClipError

if TYPE_CHECKING:
    from importlib.abc import Traversable  # a file in the package, or a pathlib.Path

#: Per-band statistics of the reference (SSL4EO-S12 L2A, offset-free reflectance x 10000).
BAND_STATS: dict[str, tuple[float, float]] = {
    "B01": (794.311, 1164.883),
    "B02": (925.161, 1205.586),
    "B03": (1183.128, 1223.713),
    "B04": (1338.041, 1399.638),
    "B05": (1667.254, 1403.298),
    "B06": (2233.633, 1378.513),
    "B07": (2460.96, 1434.924),
    "B08": (2555.569, 1491.141),
    "B8A": (2619.542, 1454.089),
    "B09": (2703.298, 1660.395),
    "B11": (2406.497, 1473.248),
    "B12": (1841.645, 1365.08),
}


@dataclass(frozen=True)
class ModelSpec:
    """A model: open_clip architecture, input bands and statistics, where its weights come from."""

    name: str
    arch: str
    bands: tuple[str, ...]
    licence: str
    description: str = ""
    #: weights on the Hugging Face hub (the official Llama3-MS-CLIP layout, or an open_clip state dict)
    hf_hub_id: str | None = None
    hf_filename: str | None = None
    hf_revision: str | None = None
    sha256: str | None = None
    #: open_clip pretrained tag of the RGB checkpoint (baselines, and the start of widened models)
    open_clip_tag: str | None = None
    image_size: int = 224
    extra: dict = field(default_factory=dict)
    #: per-band (means, stds) when not the reference ``BAND_STATS`` (e.g. as a checkpoint records them)
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    @property
    def is_rgb(self) -> bool:
        return self.bands == RGB

    @property
    def mean(self) -> tuple[float, ...]:
        return self.stats[0] if self.stats else tuple(_band_stat(b)[0] for b in self.bands)

    @property
    def std(self) -> tuple[float, ...]:
        return self.stats[1] if self.stats else tuple(_band_stat(b)[1] for b in self.bands)

    @property
    def weight_source(self) -> str:
        if self.hf_hub_id:
            return f"hf-hub:{self.hf_hub_id}/{self.hf_filename}"
        if self.open_clip_tag:
            widened = "" if self.is_rgb else " (RGB filters widened)"
            return f"open_clip:{self.arch}/{self.open_clip_tag}{widened}"
        return "random init"


def _band_stat(band: str) -> tuple[float, float]:
    if band not in BAND_STATS:
        raise MSClipError(f"no normalisation statistics for band {band}; choose from {', '.join(BAND_STATS)}")
    return BAND_STATS[band]


_REGISTRY: dict[str, ModelSpec] = {}
#: The model a command uses when neither ``--model`` nor the checkpoint's record names one.
DEFAULT_MODEL = "Llama3-MS-CLIP-Base"


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a named model, e.g. a fine-tuned checkpoint or a tiny test model."""
    _REGISTRY[spec.name] = spec
    return spec


#: The registry as data: one JSON file per registered model, in the package.
MODELS_FOLDER = "resources/models"
_SPEC_FIELDS = {f.name for f in fields(ModelSpec)}
#: Keys of a model file besides the spec's fields.
_ENTRY_KEYS = {"position", "hf_revision_note"}


def read_model_file(path: Traversable) -> tuple[int, ModelSpec]:
    """A registry entry from its JSON file: where ``msclip models`` lists it, and its spec (validated).

    Keys are :class:`ModelSpec`'s fields, plus ``position`` and ``hf_revision_note`` (what the recorded
    revision means); weights on the hub name their file and the revision the entry was written against.
    """
    where = path.name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MSClipError(f"model file {where}: cannot read it ({exc})") from exc
    if not isinstance(data, dict):
        raise MSClipError(f"model file {where}: expected a JSON object")
    unknown = sorted(set(data) - _SPEC_FIELDS - _ENTRY_KEYS)
    missing = sorted({"name", "position", "arch", "bands", "licence"} - set(data))
    if unknown or missing:
        raise MSClipError(f"model file {where}: unknown keys {unknown}, missing keys {missing}")
    if data.get("hf_hub_id") and not (data.get("hf_filename") and data.get("hf_revision")):
        raise MSClipError(f"model file {where}: a hub model names its hf_filename and hf_revision")
    bands = tuple(data["bands"])
    for band in bands:
        _band_stat(band)  # an unknown band fails here, naming it
    spec_fields = {k: v for k, v in data.items() if k in _SPEC_FIELDS}
    return int(data["position"]), ModelSpec(**{**spec_fields, "bands": bands})


def _register_package_configs() -> None:
    """Add the package's own open_clip configs (a tiny ViT for tests, demos and smoke runs)."""
    from msclip.models.openclip_import import import_open_clip

    open_clip = import_open_clip()
    folder = resources.files("msclip").joinpath("resources/model_configs")
    with resources.as_file(folder) as path:
        open_clip.add_model_config(path)


def _register_package_models() -> None:
    """The registered models, one JSON file each in ``resources/models`` (as open_clip keeps its configs)."""
    folder = resources.files("msclip").joinpath(MODELS_FOLDER)
    entries = [read_model_file(f) for f in folder.iterdir() if f.name.endswith(".json")]
    for _, spec in sorted(entries, key=lambda entry: entry[0]):
        register_model(spec)


_register_package_configs()
_register_package_models()


def list_models() -> list[ModelSpec]:
    return list(_REGISTRY.values())


def spec_for(name: str, bands: tuple[str, ...] | None = None, pretrained: str | None = None) -> ModelSpec:
    """The registered spec called ``name``, or one for any open_clip architecture and band list."""
    if name in _REGISTRY:
        spec = _REGISTRY[name]
        if bands and tuple(bands) != spec.bands:
            spec = replace(spec, name=f"{spec.name}[{'+'.join(bands)}]", bands=tuple(bands), hf_hub_id=None)
        return replace(spec, open_clip_tag=pretrained) if pretrained else spec
    from msclip.models.openclip_import import import_open_clip

    open_clip = import_open_clip()
    if name not in open_clip.list_models():
        known = ", ".join(s.name for s in list_models())
        raise MSClipError(
            f"unknown model {name!r}: registered models are {known}, or any open_clip architecture"
        )
    bands = tuple(bands) if bands else RGB
    return ModelSpec(
        name=name if bands == RGB else f"{name}[{'+'.join(bands)}]",
        arch=name,
        bands=bands,
        licence="see the open_clip checkpoint",
        open_clip_tag=pretrained,
    )
