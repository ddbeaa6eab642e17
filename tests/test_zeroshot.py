import numpy as np
import pytest
import torch

import msclip
from msclip.bands import LAYOUTS
from msclip.data import InputOptions
from tests.conftest import L2A_CHIPS, RGB_CHIPS
from tests.helpers import read_array, write_geotiff

CLASSES = ["ocean", "agriculture", "snow", "urban area"]


def test_classify_real_chips(tiny_model, chip_paths):
    result = msclip.classify(tiny_model, [L2A_CHIPS], CLASSES, template_set="clip")
    table = result.table
    assert list(table.columns) == [
        "image",
        "label",
        *CLASSES,
        "filled_fraction",
        "boa_offset",
        "boa_offset_source",
    ]
    assert (table["boa_offset"] == 0).all() and (table["boa_offset_source"] == "none").all()
    assert table["image"].tolist() == [str(p) for p in chip_paths]
    assert np.allclose(table[CLASSES].sum(axis=1), 1.0, atol=1e-5)
    assert set(table["label"]) <= set(CLASSES)
    assert not result.skipped


def test_offset_decisions_are_recorded_per_image_and_reported_once(tiny_model, chip_paths, tmp_path):
    dated = {"DATETIME": "2023-06-01T10:00:00"}
    for chip in chip_paths[:2]:  # harmonised, dated: the data keeps them from being subtracted
        write_geotiff(tmp_path / f"harmonised_{chip.name}", read_array(chip), like=chip, tags=dated)
    write_geotiff(tmp_path / "offset.tif", read_array(chip_paths[0]) + 1000, like=chip_paths[0], tags=dated)
    with pytest.warns(msclip.errors.BoaOffsetWarning) as caught:
        classified = msclip.classify(tiny_model, [tmp_path], CLASSES, template_set="clip", batch_size=2).table
    assert [str(w.message).split(" image(s)")[0] for w in caught] == ["2"]
    assert classified["boa_offset"].tolist() == [0, 0, 1000]
    assert classified["boa_offset_source"].tolist() == ["data", "data", "date+data"]
    reference = msclip.classify(tiny_model, [chip_paths[0]], CLASSES, template_set="clip").table
    for row in (0, 2):  # the dated copy and the corrected +1000 copy score as the original
        np.testing.assert_allclose(classified[CLASSES].iloc[row], reference[CLASSES].iloc[0], atol=1e-6)
    with pytest.warns(msclip.errors.BoaOffsetWarning):
        embedded = msclip.embed(tiny_model, [tmp_path]).table
    assert embedded[["boa_offset", "boa_offset_source"]].equals(
        classified[["boa_offset", "boa_offset_source"]]
    )


def test_probabilities_follow_the_reference_formula(tiny_model, chip_paths):
    result = msclip.classify(tiny_model, [chip_paths[0]], CLASSES, template_set="clip")
    from msclip.data import prepare
    from msclip.text import class_embeddings, templates

    array, _ = prepare(msclip.read(chip_paths[0]), tiny_model.bands, InputOptions())
    image = tiny_model.encode_image(tiny_model.transform(array)[None])
    classifier = class_embeddings(tiny_model, CLASSES, templates("clip"))
    expected = (tiny_model.logit_scale * image @ classifier.T).softmax(-1)
    assert np.allclose(result.table[CLASSES].to_numpy(), expected.numpy(), atol=1e-6)


def test_same_scores_from_geotiff_npy_chw_and_hwc(tiny_model, chip_paths, tmp_path):
    array = read_array(chip_paths[1])
    np.save(tmp_path / "a_chw.npy", array)
    np.save(tmp_path / "b_hwc.npy", array.transpose(1, 2, 0))
    reference = msclip.embed(tiny_model, [chip_paths[1]]).table["embedding"][0]
    for vector in msclip.embed(tiny_model, [tmp_path]).table["embedding"]:
        assert np.allclose(vector, reference, atol=1e-6)


def test_eurosat_layout_selects_b8a_by_name(tiny_model, chip_paths, tmp_path):
    array = read_array(chip_paths[2])
    l2a = LAYOUTS["L2A"]
    eurosat = np.stack(
        [array[l2a.index(b)] if b in l2a else np.zeros_like(array[0]) for b in LAYOUTS["EuroSAT"]]
    )
    np.save(tmp_path / "eurosat.npy", eurosat)
    got = msclip.embed(tiny_model, [tmp_path], options=InputOptions(layout="EuroSAT")).table["embedding"][0]
    expected = msclip.embed(tiny_model, [chip_paths[2]]).table["embedding"][0]
    assert np.allclose(got, expected, atol=1e-6)


def test_bad_files_are_reported_and_skipped(tiny_model, chip_paths, tmp_path):
    array = read_array(chip_paths[0])
    write_geotiff(tmp_path / "a_good.tif", array, like=chip_paths[0])
    write_geotiff(tmp_path / "b_cut.tif", array[:9], like=chip_paths[0], descriptions=LAYOUTS["L2A"][:9])
    write_geotiff(tmp_path / "c_empty.tif", np.zeros_like(array), like=chip_paths[0])
    (tmp_path / "d_corrupt.tif").write_bytes((tmp_path / "a_good.tif").read_bytes()[:5000])  # truncated
    gappy = array.copy()
    gappy[:, :50] = 0
    write_geotiff(tmp_path / "e_gappy.tif", gappy, like=chip_paths[0])
    result = msclip.classify(tiny_model, [tmp_path], CLASSES, template_set="clip", batch_size=2)
    assert [p.split("/")[-1] for p in result.table["image"]] == ["a_good.tif", "e_gappy.tif"]
    reasons = dict(result.skipped)
    assert "lacks band(s) B11, B12" in reasons[str(tmp_path / "b_cut.tif")]
    assert "no valid pixels" in reasons[str(tmp_path / "c_empty.tif")]
    assert "cannot read" in reasons[str(tmp_path / "d_corrupt.tif")]
    filled = result.table.set_index(result.table["image"].str.split("/").str[-1])["filled_fraction"]
    assert filled["a_good.tif"] == 0 and filled["e_gappy.tif"] == pytest.approx(50 / 224)
    assert np.isfinite(result.table[CLASSES].to_numpy()).all()


def test_retrieve_ranks_and_caps_top_k(tiny_model, chip_paths):
    queries = ["Agricultural fields in a rural area", "snow"]
    result = msclip.retrieve(tiny_model, [L2A_CHIPS], queries, top_k=50, batch_size=2)
    table = result.table
    assert len(table) == 10  # top-k larger than the collection returns all five per query
    for query in queries:
        rows = table[table["query"] == query]
        assert rows["rank"].tolist() == [1, 2, 3, 4, 5]
        assert rows["similarity"].is_monotonic_decreasing
    embeddings = torch.tensor(
        np.stack(msclip.embed(tiny_model, [L2A_CHIPS]).table["embedding"]), dtype=torch.float32
    )
    brute = (tiny_model.encode_text(queries[:1]) @ embeddings.T)[0]
    top3 = msclip.retrieve(tiny_model, [L2A_CHIPS], queries[:1], top_k=3, batch_size=2).table
    assert top3["image"].tolist() == [str(chip_paths[i]) for i in brute.topk(3).indices]


def test_embed_is_normalised_and_georeferenced(tiny_model):
    table = msclip.embed(tiny_model, [L2A_CHIPS]).table
    vectors = np.stack(table["embedding"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert table["crs"].str.startswith("EPSG:").all()
    assert all(len(b) == 4 for b in table["bounds"])


def test_worker_processes_give_the_same_result(tiny_model):
    serial = msclip.embed(tiny_model, [L2A_CHIPS], workers=0).table
    parallel = msclip.embed(tiny_model, [L2A_CHIPS], workers=2, batch_size=2).table
    assert serial["image"].tolist() == parallel["image"].tolist()
    assert np.allclose(np.stack(serial["embedding"]), np.stack(parallel["embedding"]), atol=1e-6)


def test_rgb_model_reads_pictures_and_multispectral_composites(chip_paths):
    torch.manual_seed(0)
    rgb = msclip.load_model("msclip-tiny", bands=("B04", "B03", "B02"), device="cpu")
    pictures = msclip.classify(rgb, [RGB_CHIPS], CLASSES, template_set="clip")
    composites = msclip.classify(rgb, [L2A_CHIPS], CLASSES, template_set="clip")
    assert len(pictures.table) == len(composites.table) == 5


def test_onnx_backend_matches_torch(chip_paths):
    from msclip.models.onnx_backend import attach_onnx

    torch.manual_seed(0)
    model = msclip.load_model("msclip-tiny", device="cpu")
    eager = np.stack(msclip.embed(model, chip_paths).table["embedding"])
    attach_onnx(model)
    assert model.image_backend is not None
    exported = np.stack(msclip.embed(model, chip_paths).table["embedding"])
    assert (eager * exported).sum(axis=1).min() > 0.9999
    # a batch larger than one ONNX Runtime call is fed in slices, in order
    images = torch.randn(11, len(model.bands), 224, 224)
    with torch.no_grad():
        reference = model.clip.visual(images)
    torch.testing.assert_close(model.image_backend(images), reference, rtol=1e-4, atol=1e-4)


def test_embed_refuses_a_scene_with_a_pointer_to_its_windows(tiny_model, chip_paths, tmp_path):
    """The API agrees with `msclip embed`: a scene is not squashed into one chip."""
    from msclip.zeroshot import embed

    chip = read_array(chip_paths[0])
    scene = write_geotiff(tmp_path / "scene448.tif", np.tile(chip, (1, 2, 2)), like=chip_paths[0])
    result = embed(tiny_model, [str(scene), str(chip_paths[1])])
    assert result.table["image"].tolist() == [str(chip_paths[1])]
    assert len(result.skipped) == 1 and "a scene, not a chip" in result.skipped[0][1]
    assert "embed_scene" in result.skipped[0][1]
