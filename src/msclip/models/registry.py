"""Named models, in the spirit of open_clip's pretrained registry: everything needed to build and feed one.

Configs are data. ``spec_for`` also builds a spec on the fly for any open_clip architecture widened to
any list of Sentinel-2 bands, e.g. ``spec_for("ViT-B-32", bands=S2_10)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources

from msclip.bands import RGB, S2_10
from msclip.errors import MSClipError

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


register_model(
    ModelSpec(
        name="Llama3-MS-CLIP-Base",
        arch="ViT-B-16",
        bands=S2_10,
        licence="Apache-2.0",
        description="ViT-B/16 OpenCLIP (laion2b_s34b_b88k) continually pre-trained on ~1M SSL4EO-S12 v1.1 "
        "L2A chips with Llama3-LLaVA-Next-8B captions (arXiv 2503.15969)",
        hf_hub_id="ibm-esa-geospatial/Llama3-MS-CLIP-base",
        hf_filename="Llama3_MS_CLIP_weights.pt",
    )
)
for _arch, _tag in (
    ("ViT-B-16", "laion2b_s34b_b88k"),
    ("ViT-L-14", "laion2b_s32b_b82k"),
    ("ViT-B-32", "laion2b_s34b_b79k"),
):
    register_model(
        ModelSpec(
            name=_arch,
            arch=_arch,
            bands=RGB,
            licence="MIT",
            description=f"OpenCLIP RGB baseline ({_tag})",
            open_clip_tag=_tag,
        )
    )


#: Remote-sensing RGB CLIPs that the paper compares against, published as open_clip state dicts on the hub.
#: Built as the reference benchmark builds them: the plain open_clip architecture, then the file's weights.
for _name, _arch, _repo, _file, _about in (
    ("RemoteCLIP-ViT-B-32", "ViT-B-32", "chendelong/RemoteCLIP", "RemoteCLIP-ViT-B-32.pt", "RemoteCLIP (Liu et al. 2024)"),
    ("RemoteCLIP-ViT-L-14", "ViT-L-14", "chendelong/RemoteCLIP", "RemoteCLIP-ViT-L-14.pt", "RemoteCLIP (Liu et al. 2024)"),
    ("GeoRSCLIP-ViT-B-32", "ViT-B-32", "Zilun/GeoRSCLIP", "ckpt/RS5M_ViT-B-32.pt", "GeoRSCLIP, trained on RS5M (Zhang et al. 2024)"),
):  # fmt: skip
    register_model(
        ModelSpec(
            name=_name,
            arch=_arch,
            bands=RGB,
            licence=f"see huggingface.co/{_repo}",
            description=f"{_about}: remote-sensing RGB baseline",
            hf_hub_id=_repo,
            hf_filename=_file,
        )
    )


def _register_package_configs() -> None:
    """Add the package's own open_clip configs (a tiny ViT for tests, demos and smoke runs)."""
    from msclip.models.openclip_import import import_open_clip

    open_clip = import_open_clip()
    folder = resources.files("msclip").joinpath("resources/model_configs")
    with resources.as_file(folder) as path:
        open_clip.add_model_config(path)


_register_package_configs()
register_model(
    ModelSpec(
        name="msclip-tiny",
        arch="msclip-tiny",
        bands=S2_10,
        licence="Apache-2.0",
        description="2-layer ViT with fixed random weights (seed 0), for tests and smoke runs (no download)",
    )
)


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
