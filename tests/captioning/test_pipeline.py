"""End to end with a tiny random LLaVA-NeXT: batching, parts, resume, shards and the output schema are real."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from msclip.captioning.backends import GenerationSettings, TransformersBackend
from msclip.captioning.chips import geotiff_sources
from msclip.captioning.overture import OvertureIndex
from msclip.captioning.pipeline import caption, in_shard, parse_shard, read_captions
from msclip.errors import MSClipError

COLUMNS = {
    "image", "caption", "question_1", "question_2", "question_3", "classes", "tags", "names", "model",
    "prompt_version", "generation", "n_words", "tags_mentioned", "tag_coverage", "repeated_sentences",
    "absent_classes", "flagged",
}  # fmt: skip


@pytest.fixture(scope="module")
def backend(tiny_vlm):
    return TransformersBackend.from_pretrained(str(tiny_vlm), device="cpu", settings=GenerationSettings(12))


@pytest.fixture(scope="module")
def index(overture_extract):
    return OvertureIndex.from_parquet([overture_extract[0]])


def test_captions_every_chip_with_the_published_schema(
    tmp_path, chip_paths, backend, index, overture_extract
):
    sources = geotiff_sources([str(p) for p in chip_paths], view_size=64)
    result = caption(sources, index, backend, tmp_path, batch_size=2, flush_every=2, progress=False)
    table = result.table
    assert set(table.columns) == COLUMNS
    assert sorted(table["image"]) == sorted(map(str, chip_paths))
    assert len(list(tmp_path.glob("part-*.parquet"))) == 3  # 2 + 2 + 1 chips
    first = table.set_index("image").loc[str(chip_paths[0])]
    assert list(first["tags"]) == overture_extract[1][chip_paths[0].name]["tags"]
    assert first["model"] == str(backend.model_name) and first["prompt_version"] == "v1"
    assert json.loads(first["generation"])["max_new_tokens"] == 12
    assert all(isinstance(c, str) for c in table["caption"])
    assert result.summary["captions"] == 5 and not result.skipped
    saved = json.loads(next(tmp_path.glob("_summary-*.json")).read_text())
    assert saved["captions"] == 5
    assert len(pd.read_parquet(tmp_path)) == 5  # the folder reads as one dataset


def test_a_restarted_run_skips_finished_chips(tmp_path, chip_paths, backend, index):
    paths = [str(p) for p in chip_paths]
    caption(geotiff_sources(paths[:3], view_size=64), index, backend, tmp_path, batch_size=2, progress=False)
    before = {p.name for p in tmp_path.glob("part-*.parquet")}
    result = caption(
        geotiff_sources(paths, view_size=64), index, backend, tmp_path, batch_size=2, progress=False
    )
    new_parts = {p.name for p in tmp_path.glob("part-*.parquet")} - before
    assert len(new_parts) == 1
    assert sorted(pd.read_parquet(tmp_path / new_parts.pop())["image"]) == paths[3:]
    assert sorted(result.table["image"]) == paths


def test_shards_split_the_chips_without_overlap(tmp_path, chip_paths, index):
    paths = [str(p) for p in chip_paths]
    tables = [
        caption(
            geotiff_sources(paths, view_size=16), index, None, tmp_path, shard=(i, 2), progress=False
        ).table
        for i in range(2)
    ]
    assert sorted(pd.concat(tables)["image"]) == paths
    assert [len(t) for t in tables] == [sum(in_shard(p, (i, 2)) for p in paths) for i in range(2)]
    assert len(read_captions(tmp_path)) == 5
    assert parse_shard("1/4") == (1, 4)
    with pytest.raises(MSClipError):
        parse_shard("4/4")


def test_unreadable_chips_are_reported_and_not_written(tmp_path, chip_paths, backend, index):
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"not a tiff")
    paths = [str(chip_paths[0]), str(broken)]
    result = caption(geotiff_sources(paths, view_size=64), index, backend, tmp_path / "out", progress=False)
    assert list(result.table["image"]) == [str(chip_paths[0])]
    assert [chip for chip, _ in result.skipped] == [str(broken)]


def test_ssl4eo_rows_carry_file_sample_and_time(tmp_path, ssl4eo_zarr, backend, index):
    from msclip.captioning.chips import chip_sources

    sources = chip_sources([str(ssl4eo_zarr)], view_size=64)
    table = caption(sources[:3], index, backend, tmp_path, batch_size=4, progress=False).table
    assert list(table[["sample_id", "time_id"]].itertuples(index=False, name=None)) == [
        ("a", "0"),
        ("a", "1"),
        ("b", "0"),
    ]
    assert set(table["file"]) == {"ssl4eo_s12_000001"} and "image" not in table
    again = caption(sources, index, backend, tmp_path, batch_size=4, progress=False)
    assert len(again.table) == 4 and len(list(tmp_path.glob("part-*.parquet"))) == 2


class _DiesOnSecondBatch:
    """A backend stand-in that answers one batch and is then interrupted (as a Ctrl-C or a crashed GPU)."""

    model_name = "stand-in"
    settings = GenerationSettings()

    def __init__(self):
        self.calls = 0

    def generate(self, conversations, images):
        self.calls += 1
        if self.calls > 2:  # two calls per batch: questions, then caption
            raise KeyboardInterrupt
        return ["Q1: Green? A1: Yes."] * len(conversations)


def test_an_interrupted_run_keeps_finished_batches_and_resumes(tmp_path, chip_paths, backend, index):
    sources = geotiff_sources([str(p) for p in chip_paths], view_size=64)
    with pytest.raises(KeyboardInterrupt):
        caption(sources, index, _DiesOnSecondBatch(), tmp_path, batch_size=2, flush_every=100, progress=False)
    kept = read_captions(tmp_path)
    assert len(kept) == 2 and set(kept["model"]) == {"stand-in"}
    result = caption(sources, index, backend, tmp_path, batch_size=2, progress=False)
    assert sorted(result.table["image"]) == sorted(map(str, chip_paths))
    assert (result.table["model"] == "stand-in").sum() == 2  # the first run's chips were not redone
