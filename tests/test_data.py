import numpy as np
import pytest

from msclip.bands import LAYOUTS, RGB, S2_10
from msclip.data import InputOptions, boa_offset_of, fill_gaps, prepare, rgb_composite, valid_mask
from msclip.errors import SkippedImage
from msclip.io import Raster


def raster(array, tags=None, nodata=None):
    return Raster(array, LAYOUTS["L2A"], "x.tif", tags=tags or {}, nodata=nodata)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"BOA_ADD_OFFSET": "-1000"}, 1000),
        ({"PROCESSING_BASELINE": "05.09"}, 1000),
        ({"PROCESSING_BASELINE": "03.01"}, 0),
        ({"DATETIME": "2023-06-01T10:00:00"}, 1000),
        ({"DATETIME": "2021-07-23T13:22:41.000000000"}, 0),
        ({}, 0),
    ],
)
def test_auto_offset_reads_metadata(tags, expected):
    assert boa_offset_of(raster(np.zeros((12, 1, 1)), tags)) == expected


def test_explicit_offset_wins():
    assert boa_offset_of(raster(np.zeros((12, 1, 1)), {"BOA_ADD_OFFSET": "-1000"}), "0") == 0


def test_offset_is_removed_before_the_model_sees_the_data():
    array = np.full((12, 4, 4), 2500, np.int16)
    out, _ = prepare(raster(array, {"PROCESSING_BASELINE": "04.00"}), S2_10, InputOptions())
    assert np.all(out == 1500)


def test_gaps_are_filled_with_band_means_and_flagged():
    array = np.arange(12 * 2 * 2, dtype=np.float32).reshape(12, 2, 2) + 1
    array[:, 0, 0] = 0  # nodata pixel (all bands 0)
    array[3, 1, 1] = np.nan  # NaN in one band invalidates the pixel
    out, filled = prepare(raster(array), S2_10, InputOptions())
    assert filled == pytest.approx(0.5)
    assert np.isfinite(out).all()
    b02 = array[1]
    assert out[0, 0, 0] == pytest.approx((b02[0, 1] + b02[1, 0]) / 2)


def test_all_nodata_is_skipped():
    with pytest.raises(SkippedImage, match="no valid pixels"):
        prepare(raster(np.zeros((12, 3, 3), np.int16)), S2_10, InputOptions())
    with pytest.raises(SkippedImage):
        prepare(raster(np.full((12, 3, 3), np.nan, np.float32)), S2_10, InputOptions())


def test_declared_nodata_value():
    array = np.full((12, 2, 2), 5, np.int16)
    array[:, 0, 0] = -9999
    mask = valid_mask(array, -9999)
    assert mask.tolist() == [[False, True], [True, True]]
    assert fill_gaps(array, mask)[0, 0, 0] == 5


def test_rgb_composite_clips_instead_of_wrapping():
    reflectance = np.array([[[0.0, 1500.0, 3000.0, 9000.0]]])
    assert rgb_composite(reflectance).tolist() == [[[0, 128, 255, 255]]]
    out, _ = prepare(raster(np.full((12, 2, 2), 6000, np.int16)), RGB, InputOptions())
    assert out.dtype == np.uint8 and out.max() == 255
