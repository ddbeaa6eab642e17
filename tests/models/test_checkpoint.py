"""Official checkpoint layout: strict loading of a full-size random ViT-B-16, conversion, sources."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import msclip
from msclip import load_model
from msclip.cli import main
from msclip.errors import MSClipError
from msclip.models.checkpoint import convert_to_safetensors, download, read_state_dict, to_official_layout
from msclip.models.registry import spec_for
from tests.conftest import CHECKPOINT_LAYOUT

WEIGHTS_URL = (
    "https://huggingface.co/ibm-esa-geospatial/Llama3-MS-CLIP-base/resolve/main/Llama3_MS_CLIP_weights.pt"
)


@pytest.fixture(scope="session")
def official_checkpoint(tmp_path_factory):
    """A random state dict with every key, shape and dtype of Llama3_MS_CLIP_weights.pt, the three model
    copies sharing tensors as in the real file."""
    layout = json.loads(CHECKPOINT_LAYOUT.read_text())["keys"]
    generator = torch.Generator().manual_seed(0)
    base = {}
    for key, info in layout.items():
        if key.startswith("clip_base_model.model."):
            name = key.removeprefix("clip_base_model.model.")
            base[name] = (
                torch.randn(info["shape"], generator=generator, dtype=getattr(torch, info["dtype"])) * 0.02
            )
    base["logit_scale"] = torch.tensor(np.log(100.0), dtype=torch.float32)
    state = to_official_layout(base)
    assert set(state) == set(layout), "test checkpoint must match the published layout exactly"
    path = tmp_path_factory.mktemp("ckpt") / "Llama3_MS_CLIP_weights.pt"
    torch.save(state, path)
    return path, base


@pytest.mark.slow
def test_official_layout_loads_strictly_and_gives_its_weights(official_checkpoint):
    path, base = official_checkpoint
    model = load_model("Llama3-MS-CLIP-Base", checkpoint=str(path), device="cpu")
    loaded = model.clip.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in base.items())
    assert model.clip.visual.conv1.weight.shape == (768, 10, 16, 16)
    assert model.logit_scale == pytest.approx(100.0)
    images = torch.randn(2, 10, 224, 224)
    with torch.no_grad():
        reference = torch.nn.functional.normalize(model.clip.encode_image(images), dim=-1)
    assert torch.allclose(model.encode_image(images), reference, atol=1e-6)
    prompts = ["snow", "a satellite image showing a river next to fields and a small village."]
    with torch.no_grad():
        full_context = torch.nn.functional.normalize(model.clip.encode_text(model.tokenizer(prompts)), dim=-1)
    assert torch.allclose(model.encode_text(prompts), full_context, atol=1e-5)  # trimmed context is exact


@pytest.mark.slow
def test_safetensors_conversion_gives_the_same_model(official_checkpoint, tmp_path):
    path, _ = official_checkpoint
    target = tmp_path / "model.safetensors"
    assert main(["convert", str(path), str(target)]) == 0
    from_pt = load_model("Llama3-MS-CLIP-Base", checkpoint=str(path), device="cpu")
    from_st = load_model("Llama3-MS-CLIP-Base", checkpoint=str(target), device="cpu")
    text = ["a satellite image of a river."]
    assert torch.equal(from_pt.encode_text(text), from_st.encode_text(text))


def test_incomplete_or_foreign_checkpoints_are_one_clear_error(tmp_path):
    tiny = load_model("msclip-tiny", device="cpu")
    state = tiny.clip.state_dict()
    broken = dict(state)
    broken.pop("ln_final.weight")
    torch.save(broken, tmp_path / "missing.pt")
    with pytest.raises(MSClipError, match="1 missing \\(e.g. ln_final.weight\\)"):
        load_model("msclip-tiny", checkpoint=str(tmp_path / "missing.pt"), device="cpu")

    rgb_state = load_model("msclip-tiny", bands=("B04", "B03", "B02"), device="cpu").clip.state_dict()
    torch.save(rgb_state, tmp_path / "rgb.pt")
    with pytest.raises(MSClipError, match="wrong shape \\(e.g. visual.conv1.weight"):
        load_model("msclip-tiny", checkpoint=str(tmp_path / "rgb.pt"), device="cpu")

    official = to_official_layout(state)
    official["image_encoder.model.ln_final.weight"] = official["image_encoder.model.ln_final.weight"] + 1
    torch.save(official, tmp_path / "diverged.pt")
    with pytest.raises(MSClipError, match="differs from clip_base_model"):
        load_model("msclip-tiny", checkpoint=str(tmp_path / "diverged.pt"), device="cpu")


def test_official_layout_round_trips_through_a_file(tmp_path):
    tiny = load_model("msclip-tiny", device="cpu")
    torch.save(to_official_layout(tiny.clip.state_dict()), tmp_path / "official.pt")
    again = load_model("msclip-tiny", checkpoint=str(tmp_path / "official.pt"), device="cpu")
    assert torch.equal(again.encode_text(["snow"]), tiny.encode_text(["snow"]))
    convert_to_safetensors(tmp_path / "official.pt", tmp_path / "tiny.safetensors")
    assert set(read_state_dict(tmp_path / "tiny.safetensors")) == set(tiny.clip.state_dict())


def test_pickled_objects_are_refused(tmp_path):
    import argparse

    torch.save({"weights": argparse.Namespace(run="anything")}, tmp_path / "evil.pt")
    with pytest.raises(MSClipError, match="does not unpickle") as refused:
        read_state_dict(tmp_path / "evil.pt")
    assert "\n" not in str(refused.value) and "weights_only=False" not in str(refused.value)
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(MSClipError, match="not a checkpoint") as refused:
        read_state_dict(tmp_path / "notes.pt")
    assert "\n" not in str(refused.value)
    with pytest.raises(MSClipError, match="checkpoint not found"):
        read_state_dict(tmp_path / "absent.pt")


def test_offline_download_says_what_to_do(tmp_path, monkeypatch, capsys, chip_paths):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(MSClipError, match="pass it with --checkpoint PATH"):
        load_model("Llama3-MS-CLIP-Base", device="cpu")
    # inputs are checked first (a typo fails fast), so give a real chip to reach the download
    assert main(["classify", str(chip_paths[0]), "--classes", "a"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f" {WEIGHTS_URL} " in err[0] and "--checkpoint" in err[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket closes


def test_without_network_one_probe_then_no_download_attempt(tmp_path, monkeypatch):
    """Not declared offline and no network: one short probe, then only the local cache is asked."""
    import huggingface_hub
    import huggingface_hub.constants as hf_constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    calls = []

    def cache_only(repo, filename, revision=None, **options):
        calls.append(options)
        raise LocalEntryNotFoundError("not in the cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", cache_only)
    with pytest.raises(MSClipError, match="no connection to http://127.0.0.1") as error:
        load_model("Llama3-MS-CLIP-Base", device="cpu")
    assert calls == [{"local_files_only": True}] and WEIGHTS_URL in str(error.value)  # the cache only
    monkeypatch.setattr(
        huggingface_hub, "hf_hub_download", lambda *_, revision, local_files_only: "cached.pt"
    )
    assert download(spec_for("Llama3-MS-CLIP-Base")) == "cached.pt"  # a cached copy still serves


def test_without_network_the_first_command_says_so_in_one_line(tmp_path, chip_paths):
    """The command as a new user runs it, HF_HUB_OFFLINE unset, the hub unreachable: one line, no retries."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env |= {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(msclip.__file__).parents[1]), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-c", "import sys; from msclip.cli import main; sys.exit(main())"]
    command += ["classify", str(chip_paths[0]), "--classes", "a", "--device", "cpu"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(err) == 1, done.stderr
    assert err[0].startswith("msclip: error:") and WEIGHTS_URL in err[0]


def test_registry_knows_the_reference_models():
    spec = spec_for("Llama3-MS-CLIP-Base")
    assert spec.arch == "ViT-B-16" and len(spec.bands) == 10
    assert spec.hf_hub_id == "ibm-esa-geospatial/Llama3-MS-CLIP-base"
    assert spec.mean[0] == pytest.approx(925.161) and spec.std[-1] == pytest.approx(1365.08)
    assert spec_for("ViT-L-14").open_clip_tag == "laion2b_s32b_b82k"
    widened = spec_for("ViT-B-32", bands=("B02", "B03", "B04", "B08"))
    assert widened.bands == ("B02", "B03", "B04", "B08") and not widened.is_rgb
    with pytest.raises(MSClipError, match="unknown model"):
        spec_for("NoSuchNet")


def test_remote_sensing_baselines_come_from_their_hub_files(tmp_path, monkeypatch):
    """RemoteCLIP / GeoRSCLIP publish open_clip state dicts: the hub file is fetched and loaded strictly."""
    import huggingface_hub

    from msclip.models import registry

    assert spec_for("RemoteCLIP-ViT-B-32").hf_filename == "RemoteCLIP-ViT-B-32.pt"
    assert (
        spec_for("GeoRSCLIP-ViT-B-32").hf_hub_id == "Zilun/GeoRSCLIP"
        and spec_for("GeoRSCLIP-ViT-B-32").is_rgb
    )
    torch.manual_seed(1)
    source = load_model("msclip-tiny", bands=("B04", "B03", "B02"), random_init=True, device="cpu")
    torch.save({f"module.{k}": v for k, v in source.clip.state_dict().items()}, tmp_path / "rs.pt")
    fetched = []
    monkeypatch.setattr(
        huggingface_hub,
        "hf_hub_download",
        lambda repo, name, revision=None, **_: fetched.append(name) or tmp_path / "rs.pt",
    )
    spec = registry.ModelSpec(
        "rs-tiny", "msclip-tiny", source.spec.bands, "test", hf_hub_id="a/b", hf_filename="rs.pt"
    )
    monkeypatch.setitem(registry._REGISTRY, spec.name, spec)
    model = load_model("rs-tiny", device="cpu")
    assert fetched == ["rs.pt"]
    for name, tensor in source.clip.state_dict().items():
        torch.testing.assert_close(model.clip.state_dict()[name], tensor, msg=name)


def test_a_weightless_model_is_the_same_in_every_process():
    """msclip-tiny has no weights anywhere: `embed` and a later `index search` must still use one model."""
    torch.manual_seed(1)
    first = load_model("msclip-tiny", device="cpu")
    state = torch.random.get_rng_state()
    torch.manual_seed(2)
    second = load_model("msclip-tiny", device="cpu")
    for name, tensor in first.clip.state_dict().items():
        torch.testing.assert_close(second.clip.state_dict()[name], tensor, msg=name)
    torch.manual_seed(1)
    load_model("msclip-tiny", device="cpu")
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator is left alone
    torch.manual_seed(1)
    drawn = load_model("msclip-tiny", random_init=True, device="cpu")  # training: the caller's seed decides
    assert not torch.equal(drawn.clip.visual.conv1.weight, first.clip.visual.conv1.weight)


def _resident_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads Linux's resident memory")
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_checkpoints_are_memory_mapped_not_copied(tmp_path, suffix):
    """128 MB of weights read without 128 MB of resident memory (pages come in when a model copies them)."""
    from safetensors.torch import save_file

    path = tmp_path / f"big{suffix}"
    tensors = {"a": torch.ones(32_000_000), "b": torch.zeros(100)}
    torch.save(tensors, path) if suffix == ".pt" else save_file(tensors, str(path))
    del tensors
    before = _resident_mb()
    state = read_state_dict(path)
    assert _resident_mb() - before < 32
    assert float(state["a"][-1]) == 1.0 and state["b"].shape == (100,)


def test_legacy_torch_files_are_still_read(tmp_path):
    torch.save({"a": torch.arange(3.0)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    assert torch.equal(read_state_dict(tmp_path / "old.pt")["a"], torch.arange(3.0))


def test_a_broken_model_record_is_one_clear_error(tmp_path):
    torch.save({}, tmp_path / "model.pt")
    (tmp_path / "model.json").write_text('{"model": "mine"}')
    with pytest.raises(MSClipError, match="lacks the architecture or the bands"):
        load_model(checkpoint=str(tmp_path / "model.pt"), device="cpu")
    (tmp_path / "model.json").write_text('{"arch": "NoSuchNet", "bands": ["B02"]}')
    with pytest.raises(MSClipError, match="'NoSuchNet', unknown to open_clip"):
        load_model(checkpoint=str(tmp_path / "model.pt"), device="cpu")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(MSClipError, match="unreadable model record"):
        load_model(checkpoint=str(tmp_path / "model.pt"), device="cpu")


def test_building_for_a_checkpoint_skips_init_and_restores_it(tmp_path):
    tiny = load_model("msclip-tiny", device="cpu")
    state = tiny.clip.state_dict()
    torch.save(state, tmp_path / "tiny.pt")
    again = load_model("msclip-tiny", checkpoint=str(tmp_path / "tiny.pt"), device="cpu")
    images = torch.randn(2, 10, 224, 224)
    assert torch.equal(again.encode_image(images), tiny.encode_image(images))
    torch.save({k: v for k, v in state.items() if k != "logit_scale"}, tmp_path / "partial.pt")
    with pytest.raises(MSClipError, match="1 missing"):
        load_model("msclip-tiny", checkpoint=str(tmp_path / "partial.pt"), device="cpu")
    assert float(torch.nn.init.ones_(torch.zeros(3)).sum()) == 3.0  # torch's initialisers are back


def test_skipped_initialisation_holds_in_the_building_thread_only():
    """Parameters built for a checkpoint draw no random numbers, while another thread's modules (a server
    loading a second model, a user's own code) are initialised as usual meanwhile."""
    from msclip.models.model import _ParametersUninitialised

    torch.manual_seed(0)
    with _ParametersUninitialised():
        torch.nn.MultiheadAttention(8, 2), torch.nn.Linear(8, 8), torch.nn.LayerNorm(8)
    after_build = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(after_build, torch.rand(1))  # no random numbers were drawn

    entered, release = threading.Event(), threading.Event()

    def build_for_a_checkpoint() -> None:
        with _ParametersUninitialised():
            entered.set()
            release.wait(30)

    builder = threading.Thread(target=build_for_a_checkpoint)
    builder.start()
    entered.wait(30)
    torch.manual_seed(0)
    meanwhile = torch.nn.Linear(8, 8).weight.detach().clone()
    release.set()
    builder.join()
    torch.manual_seed(0)
    assert torch.equal(meanwhile, torch.nn.Linear(8, 8).weight)


def test_a_checked_download_is_hashed_once_until_the_file_changes(tmp_path, monkeypatch):
    """``--sha256`` on every command read the whole 600 MB file each time; now once per file version."""
    import huggingface_hub

    from msclip.models import checkpoint

    path = tmp_path / "weights.pt"
    path.write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *_, **__: str(path))
    hashed = []
    monkeypatch.setattr(
        checkpoint,
        "sha256_of",
        lambda p: hashed.append(p) or hashlib.sha256(Path(p).read_bytes()).hexdigest(),
    )
    spec = spec_for("Llama3-MS-CLIP-Base")
    assert download(spec, sha256=good) == str(path) and download(spec, sha256=good.upper()) == str(path)
    assert len(hashed) == 1
    path.write_bytes(b"tampered")  # same path, new content: hashed again and refused
    with pytest.raises(MSClipError, match="sha256 does not match"):
        download(spec, sha256=good)
    assert len(hashed) == 2
