import os

import numpy as np
import pandas as pd
import pytest
import rasterio
from PIL import Image

from msclip import io
from msclip.bands import LAYOUTS, S2_10
from msclip.errors import MSClipError, SkippedImage
from msclip.io import iter_paths, read, write_table
from tests.conftest import L2A_CHIPS
from tests.helpers import read_array, write_geotiff


def test_geotiff_chip_has_l2a_bands_and_georeference(chip_paths):
    raster = read(chip_paths[0])
    assert raster.array.shape == (12, 224, 224)
    assert raster.bands == LAYOUTS["L2A"]
    assert raster.crs == "EPSG:32722"
    left, bottom, right, top = raster.bounds
    assert right - left == pytest.approx(2240) and top - bottom == pytest.approx(2240)


def test_band_descriptions_name_the_channels(chip_paths, tmp_path):
    array = read_array(chip_paths[0])[::-1]  # reversed channel order, named in the file
    path = write_geotiff(tmp_path / "rev.tif", array, like=chip_paths[0], descriptions=LAYOUTS["L2A"][::-1])
    raster = read(path)
    assert raster.bands == LAYOUTS["L2A"][::-1]
    assert np.array_equal(raster.array[raster.bands.index("B04")], read(chip_paths[0]).array[3])


def test_numpy_channels_first_and_last_read_the_same(chip_paths, tmp_path):
    array = read_array(chip_paths[0])
    np.save(tmp_path / "chw.npy", array)
    np.save(tmp_path / "hwc.npy", array.transpose(1, 2, 0))
    np.savez(tmp_path / "arch.npz", image=array.transpose(1, 2, 0))
    for name in ("chw.npy", "hwc.npy", "arch.npz"):
        raster = read(tmp_path / name)
        assert np.array_equal(raster.array, array), name
        assert raster.bands == LAYOUTS["L2A"]


def test_png_is_an_rgb8_raster(tmp_path):
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(tmp_path / "x.png")
    raster = read(tmp_path / "x.png")
    assert raster.is_rgb8 and raster.array.shape == (3, 8, 8)


def test_corrupt_and_missing_files_are_skippable(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(SkippedImage, match="bad.tif: cannot read"):
        read(tmp_path / "bad.tif")
    with pytest.raises(SkippedImage, match="no such file"):
        read(tmp_path / "gone.tif")


def test_inputs_from_folders_globs_and_lists(chip_paths, tmp_path):
    names = [p.name for p in chip_paths]
    assert [p.split("/")[-1] for p in iter_paths([L2A_CHIPS])] == names
    assert len(iter_paths([str(L2A_CHIPS / "6*.tif")])) == 2
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in chip_paths[:2]) + "\n# comment\n")
    assert len(iter_paths([listing])) == 2
    yaml_list = tmp_path / "list.yaml"
    yaml_list.write_text("images:\n" + "".join(f"  - {p}\n" for p in chip_paths[2:]))
    assert len(iter_paths([yaml_list, listing])) == 5
    with pytest.raises(MSClipError, match="input not found"):
        iter_paths([tmp_path / "nothing_here"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_tables_round_trip(tmp_path, suffix):
    table = pd.DataFrame({"image": ["a", "b"], "p": [0.25, 0.75]})
    write_table(table, tmp_path / f"out{suffix}")
    reader = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".json": pd.read_json}[suffix]
    assert reader(tmp_path / f"out{suffix}")["p"].tolist() == [0.25, 0.75]


def test_failed_write_leaves_no_file(tmp_path):
    class Boom(pd.DataFrame):
        def to_csv(self, *args, **kwargs):
            raise OSError("disk full")

    with pytest.raises(OSError):
        write_table(Boom({"a": [1]}), tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MSClipError, match="unsupported output type"):
        write_table(pd.DataFrame(), tmp_path / "out.xlsx")


def test_model_band_order_from_ten_band_file(chip_paths, tmp_path):
    array = read_array(chip_paths[0])
    ten = array[[LAYOUTS["L2A"].index(b) for b in S2_10]]
    np.save(tmp_path / "ten.npy", ten)
    assert read(tmp_path / "ten.npy").bands == S2_10


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_follow_the_umask(tmp_path, monkeypatch, umask, mode):
    """mkstemp creates 0600 files; shared outputs must be readable as the user's umask allows."""
    monkeypatch.setattr(io, "_UMASK", umask)
    table = pd.DataFrame({"a": [1]})
    for suffix in (".csv", ".parquet", ".json"):
        io.write_table(table, tmp_path / f"t{suffix}")
        assert (tmp_path / f"t{suffix}").stat().st_mode & 0o777 == mode


def test_umask_is_read_without_changing_it():
    previous = os.umask(0o027)
    try:
        assert io._read_umask() == 0o027
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(previous)


def _sparse_geotiff(path, side: int, value: int = 1500):
    """A tiled 12-band GeoTIFF of ``side`` x ``side`` pixels with one written block (tiny on disk)."""
    from rasterio.transform import Affine
    from rasterio.windows import Window

    profile = {"driver": "GTiff", "count": 12, "height": side, "width": side, "dtype": "int16", "tiled": True}
    profile |= {"compress": "deflate", "sparse_ok": True, "crs": "EPSG:32633"}
    with rasterio.open(path, "w", transform=Affine(10, 0, 500000, 0, -10, 4000000), **profile) as dst:
        dst.write(np.full((12, 256, 256), value, np.int16), window=Window(0, 0, 256, 256))
    return path


def test_large_chip_is_read_reduced_with_its_footprint_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "CHIP_READ_MAX_SIDE", 256)
    raster = read(_sparse_geotiff(tmp_path / "big.tif", 1024))
    assert raster.array.shape == (12, 256, 256)
    assert raster.bounds == (500000.0, 4000000.0 - 10240, 500000.0 + 10240, 4000000.0)
    assert raster.array[:, :64, :64].min() == 1500 and raster.array[:, 64:, 64:].max() == 0


def test_huge_header_is_refused_before_reading(tmp_path, monkeypatch):
    with pytest.raises(SkippedImage, match="too large for a chip"):
        read(_sparse_geotiff(tmp_path / "huge.tif", 100_000))
    np.save(tmp_path / "chip.npy", np.zeros((12, 4, 4), np.int16))
    monkeypatch.setattr(io, "HEADER_MAX_SAMPLES", 12 * 4 * 4 - 1)
    with pytest.raises(SkippedImage, match="too large for a chip"):
        read(tmp_path / "chip.npy")
