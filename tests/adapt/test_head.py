"""Head files: byte-for-byte round trip, the model they were made for, refusal of any other."""

import pytest
import torch
from safetensors.torch import save_file

from msclip import load_model
from msclip.adapt import Head, fit_head, load_head, model_identity, save_head
from msclip.errors import MSClipError
from tests.adapt.test_methods import separable_shots


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """Two safetensors checkpoints of msclip-tiny with different weights."""
    folder = tmp_path_factory.mktemp("weights")
    state = load_model("msclip-tiny", device="cpu").clip.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "a.safetensors")
    state["logit_scale"] = state["logit_scale"] + 1
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "b.safetensors")
    return folder / "a.safetensors", folder / "b.safetensors"


def a_head(method: str, model: dict) -> Head:
    shots = separable_shots(n_classes=3, dim=32)
    return fit_head(shots, method, ["water", "snow", "farm_land"], model, ["a photo of {c}"])


@pytest.mark.parametrize("method", ["linear-probe", "tip-adapter", "knn"])
def test_a_head_survives_save_and_load_byte_for_byte(method, tiny_model, tmp_path):
    head = a_head(method, model_identity(tiny_model))
    save_head(head, tmp_path / "head.safetensors")
    loaded = load_head(tmp_path / "head.safetensors")
    save_head(loaded, tmp_path / "again.safetensors")
    assert (tmp_path / "head.safetensors").read_bytes() == (tmp_path / "again.safetensors").read_bytes()
    assert loaded.metadata == head.metadata
    queries = torch.nn.functional.normalize(torch.randn(5, 32), dim=-1)
    assert torch.equal(loaded.probabilities(queries), head.probabilities(queries))
    assert loaded.shots == {"water": 4, "snow": 4, "farm_land": 4}
    assert loaded.templates == (None if method == "knn" else ["a photo of {c}"])


def test_head_records_the_model_and_its_checkpoint(tiny_checkpoints):
    from msclip.models.checkpoint import sha256_of

    model = load_model("msclip-tiny", str(tiny_checkpoints[0]), device="cpu")
    identity = model_identity(model)
    assert identity == {
        "name": "msclip-tiny",
        "bands": list(model.bands),
        "embed_dim": 32,
        "checkpoint_sha256": sha256_of(tiny_checkpoints[0]),
        "precision": "fp32",
    }
    a_head("knn", identity).check_model(model)  # its own model: accepted


def test_a_head_refuses_other_weights_in_one_line(tiny_checkpoints):
    made_for = load_model("msclip-tiny", str(tiny_checkpoints[0]), device="cpu")
    other = load_model("msclip-tiny", str(tiny_checkpoints[1]), device="cpu")
    with pytest.raises(MSClipError, match="checkpoint sha256") as error:
        a_head("knn", model_identity(made_for)).check_model(other)
    assert "\n" not in str(error.value)


def test_a_head_refuses_another_model_or_bands(tiny_model):
    rgb = load_model("msclip-tiny", bands=("B04", "B03", "B02"), device="cpu")
    with pytest.raises(
        MSClipError, match=r"made for model 'msclip-tiny', not 'msclip-tiny\[B04\+B03\+B02\]'"
    ):
        a_head("linear-probe", model_identity(tiny_model)).check_model(rgb)


def test_a_file_that_is_not_a_head_is_refused(tmp_path):
    save_file({"x": torch.zeros(2)}, tmp_path / "weights.safetensors")
    with pytest.raises(MSClipError, match="not an msclip head"):
        load_head(tmp_path / "weights.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(MSClipError, match="not a safetensors head file"):
        load_head(tmp_path / "junk.safetensors")
    with pytest.raises(MSClipError, match="head file not found"):
        load_head(tmp_path / "missing.safetensors")
