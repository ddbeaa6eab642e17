"""The web app with a few-shot head: classes come from the head, a head of another model is refused."""

import pytest

from msclip import embed
from msclip.adapt import Shots, fit_head, model_identity
from msclip.errors import MSClipError

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def chip_head(tiny_model, chip_paths):
    """A 1-nearest-neighbour head with one class per example chip."""
    import torch

    table = embed(tiny_model, [str(p) for p in chip_paths]).table
    features = torch.tensor(table["embedding"].tolist())
    shots = Shots(features, torch.arange(len(chip_paths)), torch.zeros(len(chip_paths), features.shape[1]))
    return fit_head(shots, "knn", [p.stem for p in chip_paths], model_identity(tiny_model), k=1)


def test_the_app_classifies_into_the_heads_classes(tiny_model, chip_paths, chip_head):
    from fastapi.testclient import TestClient

    from msclip.app import create_app

    with TestClient(create_app(tiny_model, None, [str(p) for p in chip_paths], head=chip_head)) as client:
        assert client.get("/api/info").json()["head"] == {"method": "knn", "classes": chip_head.class_names}
        answer = client.post("/api/classify", data={"examples": [p.name for p in chip_paths]}).json()
    assert answer["classes"] == chip_head.class_names
    assert [r["label"] for r in answer["results"]] == [p.stem for p in chip_paths]


def test_the_app_refuses_a_head_of_another_model(chip_head):
    from msclip import load_model
    from msclip.app import create_app

    rgb = load_model("msclip-tiny", bands=("B04", "B03", "B02"), device="cpu")
    with pytest.raises(MSClipError, match="made for model 'msclip-tiny'"):
        create_app(rgb, head=chip_head)
