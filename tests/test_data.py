from pathlib import Path

import numpy as np
import pytest

from msclip.bands import BOA_OFFSET, LAYOUTS, RGB, S2_10, remove_boa_offset
from msclip.data import (
    InputOptions,
    OffsetDecision,
    below_offset_share,
    fill_gaps,
    offset_decision,
    prepare,
    prepare_image,
    rgb_composite,
    valid_mask,
    warn_offset_decisions,
)
from msclip.errors import BoaOffsetWarning, SkippedImage
from msclip.io import Raster, read
from tests.helpers import read_array, write_geotiff


def raster(array, tags=None, nodata=None):
    return Raster(array, LAYOUTS["L2A"], "x.tif", tags=tags or {}, nodata=nodata)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"BOA_ADD_OFFSET": "-1000"}, (1000, "tag")),
        ({"PROCESSING_BASELINE": "05.09"}, (1000, "baseline")),
        ({"PROCESSING_BASELINE": "03.01"}, (0, "baseline")),
        ({"DATETIME": "2023-06-01T10:00:00"}, (1000, "date")),  # no valid pixel to check
        ({"DATETIME": "2021-07-23T13:22:41.000000000"}, (0, "date")),
        ({}, (0, "none")),
    ],
)
def test_auto_offset_reads_metadata(tags, expected):
    decision = offset_decision(raster(np.zeros((12, 1, 1)), tags))
    assert (decision.offset, decision.source) == expected


def test_explicit_offset_wins():
    decision = offset_decision(raster(np.zeros((12, 1, 1)), {"BOA_ADD_OFFSET": "-1000"}), "0")
    assert (decision.offset, decision.source) == (0, "option")


DATED = {"DATETIME": "2023-06-01T10:00:00"}


def tagged_copy(chip: Path, target: Path, add: int = 0, **tags) -> Path:
    """A copy of a real chip, ``add`` DN on every valid pixel, with metadata ``tags``."""
    array = read_array(chip)
    shifted = np.where((array == 0).all(axis=0), 0, array + add).astype(array.dtype)
    return write_geotiff(target, shifted, like=chip, tags=tags)


def prepared(path: Path):
    return prepare_image(read(path), S2_10, InputOptions())


def test_a_dated_harmonised_chip_keeps_its_values(chip_paths, tmp_path):
    harmonised = chip_paths[0]  # 282D: water and fields, most blue values far below 1000
    result = prepared(tagged_copy(harmonised, tmp_path / "dated.tif", **DATED))
    assert (result.offset.offset, result.offset.source) == (0, "data")
    np.testing.assert_array_equal(result.array, prepared(harmonised).array)


def test_a_dated_chip_with_the_offset_is_corrected(chip_paths, tmp_path):
    for chip in chip_paths:  # dark and bright chips alike: +1000 puts every visible value above 1000
        result = prepared(tagged_copy(chip, tmp_path / chip.name, add=BOA_OFFSET, **DATED))
        assert (result.offset.offset, result.offset.source) == (BOA_OFFSET, "date+data")
        np.testing.assert_array_equal(result.array, prepared(chip).array)


def test_tags_are_trusted_but_a_contradiction_is_flagged(chip_paths, tmp_path):
    tagged = tagged_copy(chip_paths[0], tmp_path / "tagged.tif", BOA_ADD_OFFSET="-1000")
    result = prepared(tagged)
    assert result.offset == OffsetDecision(BOA_OFFSET, "tag", contradicted=True)
    np.testing.assert_array_equal(result.array, remove_boa_offset(prepared(chip_paths[0]).array, BOA_OFFSET))
    with pytest.warns(BoaOffsetWarning, match=r"1 image\(s\) tagged with the \+1000 BOA offset .*tagged.tif"):
        warn_offset_decisions({str(tagged): result.offset})
    consistent = prepared(
        tagged_copy(chip_paths[0], tmp_path / "ok.tif", add=BOA_OFFSET, BOA_ADD_OFFSET="-1000")
    )
    assert consistent.offset == OffsetDecision(BOA_OFFSET, "tag")


def test_below_offset_share_counts_visible_values_of_valid_pixels():
    array = np.full((12, 2, 2), 1500, np.int16)
    array[1:4, 0, 0] = 200  # one dark pixel in B02 B03 B04
    array[:, 1, 1] = 0  # nodata
    valid = valid_mask(array, None)
    assert below_offset_share(array, LAYOUTS["L2A"], valid) == pytest.approx(1 / 3)
    assert below_offset_share(array[4:], LAYOUTS["L2A"][4:], valid) is None  # no visible band


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


def test_input_options_check_themselves():
    """The API, the app and the CLI all build InputOptions: a wrong value fails there, in one line."""
    from msclip.data import InputOptions
    from msclip.errors import MSClipError

    for wrong in ({"boa_offset": 500}, {"boa_offset": "yes"}, {"layout": "L3A"}, {"bands": ("B02", "B99")}):
        with pytest.raises(MSClipError):
            InputOptions(**wrong)
    options = InputOptions(layout="eurosat", bands=("b02", "B8a"), boa_offset=1000)
    assert options.layout == "EuroSAT" and options.bands == ("B02", "B8A")
    assert InputOptions(boa_offset="0").boa_offset == "0"
