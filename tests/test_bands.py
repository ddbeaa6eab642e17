import numpy as np
import pytest

from msclip.bands import LAYOUTS, S2_10, normalize_band_name, remove_boa_offset, resolve_layout, select_bands
from msclip.errors import MSClipError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("B2", "B02"),
        ("b02", "B02"),
        ("B8a", "B8A"),
        ("8A", None),
        ("B02 (blue)", "B02"),
        ("B13", None),
        ("x", None),
    ],
)
def test_band_names_are_normalised(given, expected):
    assert normalize_band_name(given) == expected


def test_layout_defaults_follow_band_count():
    assert resolve_layout(None, None, 12) == LAYOUTS["L2A"]
    assert resolve_layout(None, None, 13) == LAYOUTS["L1C"]
    assert resolve_layout(None, None, 10) == S2_10


def test_explicit_bands_beat_layout_and_must_match_count():
    assert resolve_layout("L2A", ["b4", "b3", "b2"], 3) == ("B04", "B03", "B02")
    with pytest.raises(MSClipError, match="does not match the image's 12 channels"):
        resolve_layout("L1C", None, 12)
    with pytest.raises(MSClipError, match="cannot tell the bands of a 7-channel image"):
        resolve_layout(None, None, 7)
    with pytest.raises(MSClipError, match="unknown layout"):
        resolve_layout("L3", None, 12)


def test_eurosat_b8a_is_selected_by_name_not_position():
    layout = LAYOUTS["EuroSAT"]
    array = np.stack([np.full((2, 2), i) for i in range(13)])  # channel i holds value i
    picked = select_bands(array, layout, S2_10)
    assert picked[S2_10.index("B8A"), 0, 0] == 12  # B8A is the last channel of EuroSAT files
    assert picked[S2_10.index("B11"), 0, 0] == layout.index("B11")


def test_missing_band_is_named():
    with pytest.raises(MSClipError, match="lacks band\\(s\\) B11, B12"):
        select_bands(np.zeros((9, 2, 2)), LAYOUTS["L2A"][:9], S2_10)


def test_offset_removed_from_valid_pixels_only_and_clipped():
    array = np.array([[[0, 500, 1500]]], dtype=np.int16)
    valid = np.array([[False, True, True]])
    assert remove_boa_offset(array, 1000, valid).tolist() == [[[0, 0, 500]]]
    assert remove_boa_offset(array, 0) is array
