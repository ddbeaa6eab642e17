"""Tag extraction from an Overture-schema extract around the real chips, against hand-made expectations."""

from __future__ import annotations

import pytest
import shapely

from msclip.captioning.chips import footprint, ssl4eo_footprint
from msclip.captioning.overture import OvertureIndex
from msclip.errors import MSClipError
from msclip.io import read


def test_tags_match_hand_made_expectations(overture_extract, chip_paths):
    root, expected = overture_extract
    index = OvertureIndex.from_parquet([root])
    found = index.tags([footprint(read(p)) for p in chip_paths])
    for path, tags in zip(chip_paths, found, strict=True):
        want = expected.get(path.name, {"classes": [], "tags": [], "names": []})
        assert (tags.classes, tags.tags, tags.names) == (want["classes"], want["tags"], want["names"]), (
            path.name
        )


def test_types_and_bbox_restrict_what_is_read(overture_extract, chip_paths):
    root, _ = overture_extract
    box = footprint(read(chip_paths[0])).bounds
    water = OvertureIndex.from_parquet([root], types=["water"], bbox=box)
    assert set(water.features["type"]) == {"water"}
    assert list(water.features["name"]) == ["Renhe Reservoir"]  # the lake lies outside the bbox
    assert "forest" in OvertureIndex.from_parquet([root]).vocabulary


def test_a_single_file_takes_its_type_from_its_name(tmp_path, overture_extract):
    root, _ = overture_extract
    single = tmp_path / "land_use.parquet"
    single.write_bytes(next(root.glob("theme=base/type=land_use/*.parquet")).read_bytes())
    assert set(OvertureIndex.from_parquet([single]).features["type"]) == {"land_use"}


def test_missing_extract_is_a_user_error(tmp_path):
    with pytest.raises(MSClipError, match="not found"):
        OvertureIndex.from_parquet([tmp_path / "nope"])


def test_ssl4eo_footprint_is_264_pixels_at_10_m():
    square = ssl4eo_footprint(45.0, 9.0, "EPSG:32632")
    assert shapely.contains(square, shapely.Point(9.0, 45.0))
    height_deg = square.bounds[3] - square.bounds[1]
    assert height_deg * 111_132 == pytest.approx(2640, rel=0.01)


def test_ssl4eo_zarr_samples_are_chips_with_metadata_footprints(ssl4eo_zarr, overture_extract, chip_paths):
    from msclip.captioning.chips import chip_sources

    root, expected = overture_extract
    sources = chip_sources([str(ssl4eo_zarr.parent)], view_size=32)
    assert [s.key for s in sources[:2]] == [
        {"file": "ssl4eo_s12_000001", "sample_id": "a", "time_id": "0"},
        {"file": "ssl4eo_s12_000001", "sample_id": "a", "time_id": "1"},
    ]
    footprints = [s.load()[0] for s in sources]
    tags = OvertureIndex.from_parquet([root]).tags(footprints)
    assert [t.tags for t in tags] == [expected[chip_paths[1].name]["tags"]] * 2 + [[], []]
    assert sources[0].load()[1].size == (32, 32)


def test_places_of_releases_before_2024_use_categories_main(tmp_path, chip_paths):
    import geopandas as gpd

    centre = footprint(read(chip_paths[2])).centroid
    old = gpd.GeoDataFrame(
        {
            "categories": [{"main": "ski_resort", "alternate": None}],
            "names": [{"primary": "Snowy", "common": None}],
        },
        geometry=[centre],
        crs="EPSG:4326",
    )
    old.to_parquet(tmp_path / "place.parquet")
    [tags] = OvertureIndex.from_parquet([tmp_path / "place.parquet"]).tags([footprint(read(chip_paths[2]))])
    assert (tags.classes, tags.names) == (["ski resort"], ["Snowy (ski resort)"])


def test_a_batch_that_touches_only_unnamed_features_has_no_names(chip_paths):
    """Unnamed features are common in Overture: a batch with no named one still gets its classes and tags."""
    import pandas as pd

    chip = footprint(read(chip_paths[0]))
    features = pd.DataFrame(
        {"geometry": [chip], "type": ["land"], "class": ["forest"], "subtype": ["forest"], "name": [None]}
    )
    (tags,) = OvertureIndex(features).tags([chip])
    assert (tags.classes, tags.tags, tags.names) == (["forest"], ["forest"], [])
