"""Scene maps, labels and adaptation through the HTTP API: overlays in the right colours at the right place,
window probabilities as the COG holds them, labels by server-made ids, a head fitted with adapt's default
method, and one JSON error line for every bad request."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image

from msclip.adapt import DEFAULT_METHOD, load_head
from tests.app.conftest import MAP_CLASSES, window_centres

ZERO_SHOT = "ocean\nsnow"


def mercator(lon: float, lat: float) -> tuple[float, float]:
    return math.radians(lon), math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def new_session(client) -> str:
    return client.post("/api/session").json()["session"]


def test_the_folder_lists_its_maps_with_classes_colours_and_bounds(client):
    found = {m["id"]: m for m in client.get("/api/maps").json()["maps"]}
    listed = found.pop("tiled")
    assert all(m.get("adapted_from") == "tiled" for m in found.values())  # notes.tif is not a map
    assert listed["id"] == "tiled" and listed["classes"] == MAP_CLASSES
    assert len(set(listed["colours"])) == len(MAP_CLASSES)
    assert listed["windows"] == {"Pasture": 3, "Residential": 13} | {
        c: 0 for c in MAP_CLASSES if c not in ("Pasture", "Residential")
    }
    west, south, east, north = listed["bounds"]
    assert -48.2 < west < east < -47.9 and -25.5 < south < north < -25.2  # chip 0's grid, southern Brazil
    assert client.get("/api/info").json()["maps"] == 1 + len(found)


def test_the_overlay_shows_each_window_in_its_class_colour(client, scene_maps):
    listed = client.get("/api/maps").json()["maps"][0]
    picture = np.asarray(Image.open(io.BytesIO(client.get(listed["overlay"]).content)))
    height, width, _ = picture.shape
    west, south, east, north = listed["bounds"]
    (x0, y0), (x1, y1) = mercator(west, south), mercator(east, north)
    with rasterio.open(scene_maps["tiled"].path) as src:
        labels = src.read(len(MAP_CLASSES) + 1).ravel()
    for window, lon, lat in window_centres(scene_maps["tiled"]):
        x, y = mercator(lon, lat)
        column, row = int((x - x0) / (x1 - x0) * width), int((y1 - y) / (y1 - y0) * height)
        colour = listed["colours"][int(labels[window])]
        expected = [int(colour[i : i + 2], 16) for i in (1, 3, 5)] + [255]
        assert picture[row, column].tolist() == expected, window
    assert picture[0, 0, 3] == 0  # the UTM grid is tilted in Mercator: its corners are transparent


def test_a_click_gives_the_windows_probabilities(client, scene_maps):
    with rasterio.open(scene_maps["tiled"].path) as src:
        values = src.read()
    for window, lon, lat in window_centres(scene_maps["tiled"])[3:6]:
        answer = client.get(f"/api/maps/tiled/at?lon={lon}&lat={lat}").json()
        row, col = divmod(window, 4)
        assert (answer["window"], answer["row"], answer["col"]) == (window, row, col)
        np.testing.assert_allclose(answer["probabilities"], values[:-1, row, col], rtol=1e-6)
        assert answer["label"] == MAP_CLASSES[int(values[-1, row, col])]
        assert answer["geometry"]["type"] == "Polygon"
    off = client.get("/api/maps/tiled/at?lon=0&lat=0")
    assert off.status_code == 404 and "no mapped window" in off.json()["error"]


@pytest.mark.parametrize(
    ("request_", "status", "expected"),
    [
        (("get", "/api/maps/nope/overlay.png", {}), 400, "no map 'nope'"),
        (("get", "/api/maps/..%2F..%2Fetc%2Fpasswd/at?lon=0&lat=0", {}), 404, "Not Found"),
        (("get", "/api/maps/tiled/at?lon=east&lat=0", {}), 422, "lon"),
        (("get", "/api/maps/tiled/at?lon=nan&lat=0", {}), 400, "not a longitude"),
        (("get", "/api/maps/tiled/at?lon=10&lat=91", {}), 400, "not a longitude"),
        (
            ("post", "/api/labels", {"session": "x", "label": "a", "samples": ["y"]}),
            400,
            "unknown or expired session",
        ),
        (("post", "/api/adapt", {"session": "../../etc"}), 400, "unknown or expired session"),
        (("post", "/api/adapt", {}), 422, "session"),
        (("get", "/api/heads/0123.safetensors", {}), 404, "head expired or unknown"),
    ],
)
def test_bad_map_and_label_requests_are_one_json_error(client, request_, status, expected):
    method, url, data = request_
    response = client.get(url) if method == "get" else client.post(url, data=data)
    assert response.status_code == status
    assert expected in response.json()["error"] and "Traceback" not in response.text


def test_labels_need_known_items_a_class_and_two_classes(client, chip_paths):
    session = new_session(client)
    answer = client.post(
        "/api/classify", data={"classes": ZERO_SHOT, "examples": [chip_paths[0].name], "session": session}
    ).json()
    sample = answer["results"][0]["sample"]
    for data, expected in [
        ({"samples": ["/etc/passwd"], "label": "a"}, "unknown or expired item"),
        ({"label": "a"}, "tick at least one item"),
        ({"samples": [sample], "label": "x" * 301}, "at most 300"),
        ({"map": "tiled", "window": "99", "label": "a"}, "has no window 99"),
        ({"map": "tiled", "label": "a"}, "window number"),
    ]:
        response = client.post("/api/labels", data={"session": session, **data})
        assert response.status_code == 400 and expected in response.json()["error"], data
    assert client.post("/api/labels", data={"session": session, "samples": [sample], "label": "a"}).is_success
    one_class = client.post("/api/adapt", data={"session": session})
    assert one_class.status_code == 400 and "at least two classes" in one_class.json()["error"]
    taken_back = client.post(
        "/api/labels", data={"session": session, "samples": [sample], "label": ""}
    ).json()
    assert taken_back["counts"] == {}
    no_head = client.post(
        "/api/classify",
        data={"examples": [chip_paths[0].name], "session": session, "adapted": "true"},
    )
    assert no_head.status_code == 400 and "no adapted head" in no_head.json()["error"]


def test_label_three_chips_per_class_then_adapt(client, tiny_model, six_chips, tmp_path):
    session = new_session(client)
    files = [("files", (p.name, p.read_bytes(), "image/tiff")) for p in six_chips]
    zero_shot = client.post(
        "/api/classify", data={"classes": ZERO_SHOT, "session": session}, files=files
    ).json()
    samples = {r["image"]: r["sample"] for r in zero_shot["results"]}
    assert len(samples) == 6 and len(set(samples.values())) == 6
    wanted = dict(zip([p.name for p in six_chips], ["snow", "ocean"] * 3, strict=True))
    for name, label in wanted.items():
        labelled = client.post(
            "/api/labels", data={"session": session, "samples": [samples[name]], "label": label}
        )
    assert labelled.json()["counts"] == {"ocean": 3, "snow": 3}
    answer = client.post("/api/adapt", data={"session": session}).json()
    assert answer["method"] == DEFAULT_METHOD and answer["classes"] == ["ocean", "snow"]
    assert answer["shots"] == {"ocean": 3, "snow": 3}
    assert 0.0 <= answer["accuracy"] <= 1.0 and "held-out accuracy" in answer["accuracy_note"]
    predicted = {name: answer["predictions"][sample]["label"] for name, sample in samples.items()}
    assert predicted == wanted  # the head learnt the labels
    before = {r["image"]: r["label"] for r in zero_shot["results"]}
    assert before != wanted  # ...which zero-shot did not give

    head_file = client.get(answer["head"])
    assert head_file.status_code == 200
    path = tmp_path / "head.safetensors"
    path.write_bytes(head_file.content)
    head = load_head(path)
    assert head.method == DEFAULT_METHOD and head.class_names == ["ocean", "snow"]
    head.check_model(tiny_model)

    again = client.post(
        "/api/classify", data={"session": session, "adapted": "true"}, files=files
    ).json()  # classify with the adapted head: its classes, its predictions
    assert again["classes"] == ["ocean", "snow"]
    assert {r["image"]: r["label"] for r in again["results"]} == wanted


def test_one_label_per_class_adapts_without_a_held_out_figure(client, chip_paths):
    session = new_session(client)
    answer = client.post(
        "/api/search", data={"query": "a field", "top_k": "2", "session": session}
    ).json()  # search hits are labelled from the index's embeddings
    for hit, label in zip(answer["hits"], ["fields", "quarry"], strict=True):
        client.post("/api/labels", data={"session": session, "samples": [hit["sample"]], "label": label})
    adapted = client.post("/api/adapt", data={"session": session}).json()
    assert adapted["accuracy"] is None and "at least two labels of every class" in adapted["accuracy_note"]


def test_label_map_windows_adapt_and_map_again(client, scene_maps):
    session = new_session(client)
    listed = client.get("/api/maps").json()["maps"][0]
    by_label = {}
    for window, lon, lat in window_centres(scene_maps["tiled"]):
        by_label.setdefault(client.get(f"/api/maps/tiled/at?lon={lon}&lat={lat}").json()["label"], []).append(
            window
        )
    pasture, residential = by_label["Pasture"], by_label["Residential"][:3]
    for windows, label in [(pasture, "meadow"), (residential, "town")]:
        for window in windows:
            answer = client.post(
                "/api/labels",
                data={"session": session, "map": "tiled", "window": str(window), "label": label},
            ).json()
    assert answer["counts"] == {"meadow": 3, "town": 3}
    assert "tiled window 4" in {item["name"] for item in answer["labels"]}
    assert client.post("/api/adapt", data={"session": session}).json()["accuracy"] is not None
    made = client.post(f"/api/maps/{listed['id']}/adapted", data={"session": session}).json()
    assert made["classes"] == ["meadow", "town"] and made["adapted_from"] == "tiled"
    assert sum(made["windows"].values()) == 16
    assert made["id"] in {m["id"] for m in client.get("/api/maps").json()["maps"]}
    for window, lon, lat in window_centres(scene_maps["tiled"]):
        label = client.get(f"/api/maps/{made['id']}/at?lon={lon}&lat={lat}").json()["label"]
        if window in pasture:
            assert label == "meadow", window
        elif window in residential:
            assert label == "town", window


def test_a_basemap_is_offered_to_the_page_with_its_credit(tiny_model):
    from fastapi.testclient import TestClient

    from msclip.app import create_app

    url = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    info = TestClient(create_app(tiny_model, basemap=url)).get("/api/info").json()
    assert info["basemap"]["url"] == url and "OpenStreetMap" in info["basemap"]["attribution"]
    assert info["maps"] == 0
    plain = TestClient(create_app(tiny_model))
    assert plain.get("/api/info").json()["basemap"] is None
    response = plain.get("/api/maps/x/overlay.png")
    assert response.status_code == 400 and "--maps DIR" in response.json()["error"]


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--basemap", "https://tile.example.org/{z}/{x}.png"], "not a tile URL template"),
        (["--basemap", "tile.openstreetmap.org/{z}/{x}/{y}.png"], "not a tile URL template"),
        (["--maps", "MISSING"], "no such folder"),
        (["--maps", "EMPTY"], "no class maps here"),
    ],
)
def test_cli_refuses_a_bad_basemap_or_maps_folder_in_one_line_before_the_model(
    option, expected, tmp_path, capsys
):
    from msclip.cli import main

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "scene.tif").write_text("not a map")
    option = [
        o.replace("MISSING", str(tmp_path / "nope")).replace("EMPTY", str(tmp_path / "empty")) for o in option
    ]
    assert main(["app", *option, "--model", "no-such-model"]) == 2  # refused before the model is looked up
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1


def test_map_again_keeps_the_windows_by_the_maps_own_filters(scene_maps, tiny_model, tmp_path, monkeypatch):
    """A map made with --min-valid 0.25 --max-cloud 0.75 (and, as before this release, no embeddings kept in
    its footprints) is read and mapped again with those filters, not the defaults."""
    import shutil

    import msclip.scenes
    from msclip.app.maps import find_maps, remap

    source = scene_maps["tiled"]
    shutil.copy(source.path, tmp_path / "strict.tif")
    source.windows.drop(columns="embedding").to_parquet(tmp_path / "strict.parquet")
    with rasterio.open(tmp_path / "strict.tif", "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        dst.update_tags(min_valid="0.25", max_cloud="0.75")
    used = {}

    def remember_windows(model, scene, **kwargs):
        used.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(msclip.scenes, "map_scene", remember_windows)
    with pytest.raises(RuntimeError, match="stop here"):
        remap(tiny_model, find_maps(str(tmp_path))["strict"], None, tmp_path)
    windows = used["windows"]
    assert (windows.stride, windows.min_valid, windows.max_cloud) == (224, 0.25, 0.75)


def test_kept_embeddings_score_and_label_windows_as_reading_the_scene_again(scene_maps, tiny_model):
    """A map's footprints keep its windows' embeddings: labelling a window and mapping again with a head use
    them (no scene read) and give what reading and embedding the scene again gives."""
    from msclip.adapt import Shots, fit_head, model_identity, text_classifier
    from msclip.app.maps import _mapped_again, _rescored, window_embedding
    from msclip.data import InputOptions
    from msclip.text import templates

    source = scene_maps["tiled"]
    stored = source.stored_embeddings(tiny_model)
    assert stored is not None and sum(v is not None for v in stored) == 16
    for k in (0, 5, 15):
        np.testing.assert_allclose(
            window_embedding(tiny_model, source, k, InputOptions()), stored[k], atol=1e-6
        )
    features = torch.tensor(np.stack(stored[:6]), dtype=torch.float32)
    shots = Shots(
        features, torch.tensor([0, 1, 0, 1, 0, 1]), text_classifier(tiny_model, ["a", "b"], templates())
    )
    head = fit_head(shots, DEFAULT_METHOD, ["a", "b"], model_identity(tiny_model))
    fast, slow = _rescored(tiny_model, source, head), _mapped_again(tiny_model, source, head)
    assert fast.classes == slow.classes == ["a", "b"] and fast.made_with == slow.made_with
    np.testing.assert_allclose(fast.probabilities, slow.probabilities, atol=1e-5)
    assert list(fast.windows["label"]) == list(slow.windows["label"])
    assert list(fast.windows.columns) == list(slow.windows.columns)


def test_kept_embeddings_of_other_weights_are_not_used(scene_maps, tiny_model, tmp_path):
    """A map made with other weights of the same model name: its kept embeddings are not mixed with the app's."""
    import shutil

    from msclip.app.maps import find_maps

    source = scene_maps["tiled"]
    for suffix in (".tif", ".parquet"):
        shutil.copy(source.path.with_suffix(suffix), tmp_path / f"other{suffix}")
    with rasterio.open(tmp_path / "other.tif", "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        dst.update_tags(weights_sha256="0" * 64)
    assert source.stored_embeddings(tiny_model) is not None
    assert find_maps(str(tmp_path))["other"].stored_embeddings(tiny_model) is None
