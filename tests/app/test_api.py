"""The HTTP API in-process: classify real chips, clear messages for bad uploads, search a small index."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from msclip import classify
from msclip.app import Limits, create_app
from tests.conftest import RGB_CHIPS
from tests.helpers import read_array, write_geotiff

CLASSES = ["ocean", "agriculture", "snow"]


def upload(path: Path, name: str | None = None) -> tuple:
    return ("files", (name or path.name, path.read_bytes(), "image/tiff"))


def picture(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def test_info_lists_model_presets_examples_and_index(client, chip_paths):
    info = client.get("/api/info").json()
    assert info["model"] == "msclip-tiny"
    assert len(info["presets"]["EuroSAT"]) == 10
    assert info["examples"] == [p.name for p in chip_paths]
    assert info["index"]["count"] == 5
    page = client.get("/")
    assert page.status_code == 200 and "app.js" in page.text
    assert "Classify" in client.get("/static/app.js").text


def test_classify_uploads_and_examples_as_the_api_does(client, tiny_model, chip_paths):
    answer = client.post(
        "/api/classify",
        data={"classes": "ocean\nagriculture, snow", "examples": [chip_paths[3].name]},
        files=[upload(chip_paths[0]), upload(chip_paths[1])],
    ).json()
    assert answer["errors"] == []
    assert answer["classes"] == CLASSES
    by_name = {r["image"]: r for r in answer["results"]}
    assert sorted(by_name) == sorted(chip_paths[i].name for i in (0, 1, 3))
    expected = classify(tiny_model, [str(chip_paths[i]) for i in (0, 1, 3)], CLASSES).table
    for row in expected.itertuples(index=False):
        got = by_name[Path(row.image).name]
        np.testing.assert_allclose(got["probabilities"], [getattr(row, c) for c in CLASSES], rtol=1e-5)
        assert got["label"] == row.label
    rgb, false_colour = (
        picture(by_name[chip_paths[0].name]["rgb"]),
        picture(by_name[chip_paths[0].name]["false_colour"]),
    )
    assert rgb.shape == false_colour.shape == (224, 224, 3)
    assert not np.array_equal(rgb, false_colour)  # NIR in red: a different picture

    csv = client.get(answer["csv"])
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(csv.text))
    assert list(table.columns) == [
        "image",
        "label",
        *CLASSES,
        "filled_fraction",
        "boa_offset",
        "boa_offset_source",
    ]
    assert sorted(table["image"]) == sorted(by_name)  # names the user knows, never temporary paths


def test_an_rgb_chip_for_a_multispectral_model_names_the_missing_bands(client):
    chip = sorted(RGB_CHIPS.glob("*.tif"))[0]
    answer = client.post("/api/classify", data={"classes": "ocean\nsnow"}, files=[upload(chip)]).json()
    # the tiny model wants 10 bands: the RGB chip cannot be classified, and the page says why
    assert answer["results"] == []
    assert "lacks band(s)" in answer["errors"][0]["message"] and chip.name in answer["errors"][0]["message"]


def test_bad_uploads_get_one_clear_message_each_and_the_rest_goes_on(client, chip_paths, tmp_path):
    five_bands = write_geotiff(tmp_path / "five.tif", read_array(chip_paths[0])[:5], like=chip_paths[0])
    files = [
        upload(chip_paths[2]),
        ("files", ("notes.tif", b"this is not a raster", "image/tiff")),
        ("files", ("../../etc/passwd.tif", b"root:x:0:0", "image/tiff")),
        ("files", ("tool.exe", b"MZ", "application/octet-stream")),
        ("files", ("empty.tif", b"", "image/tiff")),
        upload(five_bands),
    ]
    response = client.post("/api/classify", data={"classes": "ocean\nsnow"}, files=files)
    assert response.status_code == 200
    answer = response.json()
    assert [r["image"] for r in answer["results"]] == [chip_paths[2].name]
    messages = {e["image"]: e["message"] for e in answer["errors"]}
    assert "not a raster" in messages["notes.tif"]
    assert "not a raster" in messages["passwd.tif"]  # the folders of a file name are dropped
    assert "not a supported image type" in messages["tool.exe"]
    assert "empty" in messages["empty.tif"]
    assert "5-channel" in messages["five.tif"] and "choose a layout" in messages["five.tif"]
    text = response.text
    assert "Traceback" not in text and "/tmp" not in text and "msclip-app-" not in text


def test_size_limits(tiny_model, chip_paths):
    from fastapi.testclient import TestClient

    small = TestClient(
        create_app(tiny_model, examples=chip_paths, limits=Limits(max_file_mb=0.5, max_files=2))
    )
    answer = small.post("/api/classify", data={"classes": "a\nb"}, files=[upload(chip_paths[0])]).json()
    assert "too large (over 0.5 MB per file)" in answer["errors"][0]["message"]
    whole = small.post("/api/classify", data={"classes": "a\nb"}, files=[upload(p) for p in chip_paths[:3]])
    assert whole.status_code == 413 and "upload too large" in whole.json()["error"]
    examples = {"classes": "a\nb", "examples": [p.name for p in chip_paths[:3]]}
    too_many = small.post("/api/classify", data=examples)
    assert too_many.status_code == 400 and "too many images (3)" in too_many.json()["error"]
    few_values = TestClient(create_app(tiny_model, limits=Limits(max_values=100_000)))
    answer = few_values.post("/api/classify", data={"classes": "a\nb"}, files=[upload(chip_paths[0])]).json()
    assert (
        "too large" in answer["errors"][0]["message"] and "million values" in answer["errors"][0]["message"]
    )


def test_a_body_without_length_is_refused(client):
    chunks = iter([b"classes=ocean", b"%0Asnow"])  # streamed: no Content-Length, so no size to check
    response = client.post(
        "/api/classify", content=chunks, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 411 and "Content-Length" in response.json()["error"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"classes": "ocean\nsnow", "templates": "/etc/passwd"}, "unknown template set"),
        ({"classes": "ocean\nocean"}, "given twice"),
        ({"classes": " \n "}, "no class names"),
        ({"classes": "ocean\nsnow"}, "upload at least one image"),
        ({"classes": "ocean\nsnow", "examples": ["../../../etc/passwd"]}, "not one of the examples"),
        ({"classes": "ocean\nsnow", "examples": ["x"], "layout": "weird"}, "unknown layout"),
        ({}, "classes"),
    ],
)
def test_form_mistakes_are_messages_not_tracebacks(client, data, expected):
    response = client.post("/api/classify", data=data)
    body = response.json()
    if "error" in body:
        assert response.status_code in (400, 422)
        assert expected in body["error"]
    else:  # unknown example: reported per image like a bad upload
        assert expected in body["errors"][0]["message"]


def test_text_search_matches_the_index_and_filters_by_box(client, tiny_model, chip_index):
    answer = client.post("/api/search", data={"query": "a sandy coast", "top_k": "3"}).json()
    expected = chip_index.search(tiny_model.encode_text(["a sandy coast"]).numpy(), top_k=3)
    assert [h["id"] for h in answer["hits"]] == expected["id"].tolist()
    np.testing.assert_allclose([h["score"] for h in answer["hits"]], expected["score"], rtol=1e-5)
    assert all(h["geometry"]["type"] == "Polygon" for h in answer["hits"])

    first = answer["hits"][0]
    lons, lats = zip(*first["geometry"]["coordinates"][0], strict=True)
    box = f"{min(lons) - 0.01},{min(lats) - 0.01},{max(lons) + 0.01},{max(lats) + 0.01}"
    boxed = client.post("/api/search", data={"query": "a sandy coast", "bbox": box}).json()
    assert [h["id"] for h in boxed["hits"]] == [first["id"]]

    thumb = client.get(first["thumbnail"])
    assert thumb.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(thumb.content)).size == (224, 224)
    footprints = client.get("/api/footprints").json()
    assert len(footprints["features"]) == 5


def test_image_search_finds_the_same_chip_first(client, chip_paths):
    response = client.post(
        "/api/search", data={"top_k": "2"}, files={"image": (chip_paths[4].name, chip_paths[4].read_bytes())}
    )
    hits = response.json()["hits"]
    assert hits[0]["image"] == chip_paths[4].name
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, "type a query"),
        ({"query": "x", "bbox": "1,2,3"}, "four numbers"),
        ({"query": "x", "bbox": "10,0,5,1"}, "min lon < max lon"),
        ({"query": "x", "top_k": "0"}, "top k"),
        ({"query": "x", "start": "yesterday"}, "not a date"),
    ],
)
def test_search_mistakes(client, data, expected):
    response = client.post("/api/search", data=data)
    assert response.status_code == 400
    assert expected in response.json()["error"]


def test_search_without_an_index_says_how_to_get_one(tiny_model):
    from fastapi.testclient import TestClient

    plain = TestClient(create_app(tiny_model))
    assert plain.get("/api/info").json()["index"] is None
    response = plain.post("/api/search", data={"query": "x"})
    assert response.status_code == 400 and "--index" in response.json()["error"]


def test_an_index_of_another_model_is_refused(tiny_model, chip_index, monkeypatch):
    from msclip.errors import MSClipError

    monkeypatch.setattr(chip_index, "model_name", "Llama3-MS-CLIP-Base")
    with pytest.raises(MSClipError, match="holds Llama3-MS-CLIP-Base embeddings"):
        create_app(tiny_model, chip_index)


def test_cli_reports_a_missing_index_in_one_line(tmp_path, capsys):
    from msclip.cli import main

    assert main(["app", "--index", str(tmp_path / "nope"), "--model", "msclip-tiny"]) == 1
    assert "not an msclip index" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("route", "data", "expected"),
    [
        (
            "/api/classify",
            {"classes": "ocean\n" + "v" * 850_000, "examples": ["x"]},
            "850,000 characters",
        ),
        ("/api/classify", {"classes": "ocean\n" + "x" * 301, "examples": ["x"]}, "at most 300"),
        ("/api/search", {"query": "a river " * 40}, "at most 300"),
    ],
)
def test_long_class_names_and_queries_are_refused_before_the_model(client, route, data, expected):
    """An 850 KB class name held the model for 46 s: it is refused at once, with the limit."""
    response = client.post(route, data=data)
    assert response.status_code == 400 and expected in response.json()["error"]


def test_many_class_names_are_refused(client):
    response = client.post("/api/classify", data={"classes": ",".join(f"c{i}" for i in range(5000))})
    assert response.status_code == 400 and "too many classes (5000)" in response.json()["error"]


def test_a_class_name_is_never_read_as_a_server_file(client, chip_paths, tmp_path):
    """The CLI reads one .txt/.yaml argument as a list of names; the page's names stay names."""
    secret = tmp_path / "classes.txt"
    secret.write_text("server secret\nanother line\n")
    answer = client.post(
        "/api/classify", data={"classes": str(secret), "examples": [chip_paths[0].name]}
    ).json()
    assert answer["classes"] == [str(secret)]
