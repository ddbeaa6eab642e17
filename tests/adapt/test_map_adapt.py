"""msclip map --head / --transductive on a synthetic scene tiled from the real chips."""

import geopandas as gpd
import numpy as np
import rasterio

from msclip.cli import main
from tests.helpers import read_array, write_geotiff
from tests.scenes.synthetic import write_scene

TINY = ["--model", "msclip-tiny", "--device", "cpu", "--workers", "0"]


def test_map_with_a_knn_head_labels_each_window_with_the_chip_it_shows(chip_paths, tmp_path):
    for chip in chip_paths:  # one class per chip: the chip and its mirror image, as the scene tiles them
        array = read_array(chip)
        (tmp_path / "train" / chip.stem).mkdir(parents=True)
        write_geotiff(tmp_path / "train" / chip.stem / "chip.tif", array, like=chip)
        write_geotiff(tmp_path / "train" / chip.stem / "mirrored.tif", array[:, :, ::-1].copy(), like=chip)
    head = tmp_path / "head.safetensors"
    assert (
        main(["adapt", str(tmp_path / "train"), "--method", "knn", "--k", "1", "--output", str(head), *TINY])
        == 0
    )
    scene = write_scene(tmp_path / "scene.tif", chip_paths, size=672, border=0)
    assert main(["map", str(scene), "--head", str(head), "--output", str(tmp_path / "m.tif"), *TINY]) == 0
    windows = gpd.read_parquet(tmp_path / "m.parquet")
    expected = [chip_paths[(i * 3 + j) % 5].stem for i in range(3) for j in range(3)]
    assert windows["label"].tolist() == expected
    with rasterio.open(tmp_path / "m.tif") as src:
        assert src.tags()["classes"] == "|".join(sorted(c.stem for c in chip_paths))

    out = tmp_path / "t.tif"
    assert (
        main(["map", str(scene), "--classes", "sea", "snow", "--transductive", "--output", str(out), *TINY])
        == 0
    )
    windows = gpd.read_parquet(tmp_path / "t.parquet")
    assert len(windows) == 9
    np.testing.assert_allclose(windows[["sea", "snow"]].sum(axis=1), 1, atol=1e-5)
