"""The registry is data: one JSON file per model, each validated and loaded in its listed place."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from msclip.errors import MSClipError
from msclip.models import list_models
from msclip.models.registry import MODELS_FOLDER, read_model_file

FILES = sorted(
    (f for f in resources.files("msclip").joinpath(MODELS_FOLDER).iterdir() if f.name.endswith(".json")),
    key=lambda f: f.name,
)


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_every_model_file_validates_and_is_registered_as_written(file):
    data = json.loads(file.read_text(encoding="utf-8"))
    position, spec = read_model_file(file)
    assert file.name == f"{spec.name}.json"
    assert list_models()[position - 1] == spec  # listed where the file says
    assert spec.bands == tuple(data["bands"]) and spec.arch == data["arch"]
    if spec.hf_hub_id:  # a hub file: which revision the entry was written against, and what that means
        assert spec.hf_filename and spec.hf_revision and data["hf_revision_note"]


def test_the_files_are_the_whole_registry_in_order():
    positions = sorted(read_model_file(f)[0] for f in FILES)
    assert positions == list(range(1, len(FILES) + 1))
    assert [s.name for s in list_models()][: len(FILES)] == [
        "Llama3-MS-CLIP-Base", "ViT-B-16", "ViT-L-14", "ViT-B-32",
        "RemoteCLIP-ViT-B-32", "RemoteCLIP-ViT-L-14", "GeoRSCLIP-ViT-B-32", "msclip-tiny",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"licnce": "MIT"}, r"unknown keys \['licnce'\]"),
        ({"hf_revision": None}, "names its hf_filename and hf_revision"),
        ({"bands": ["B02", "B99"]}, "no normalisation statistics for band B99"),
    ],
)
def test_a_broken_model_file_is_named(tmp_path, change, message):
    data = json.loads(FILES[0].read_text(encoding="utf-8"))
    broken = Path(tmp_path / FILES[0].name)
    broken.write_text(json.dumps({**data, **change}))
    with pytest.raises(MSClipError, match=message):
        read_model_file(broken)
