"""The msclip command end to end (in-process): outputs, tables, exit codes, one-line errors."""

import numpy as np
import pandas as pd
import pytest

from msclip.cli import main
from tests.conftest import L2A_CHIPS
from tests.helpers import read_array, write_geotiff

TINY = ["--model", "msclip-tiny", "--device", "cpu"]


def test_classify_writes_named_class_columns(tmp_path, capsys):
    out = tmp_path / "results.csv"
    code = main(["classify", str(L2A_CHIPS), "--classes", "ocean", "agriculture", "snow", "urban area",
                 "--templates", "clip", "--output", str(out), *TINY])  # fmt: skip
    assert code == 0
    table = pd.read_csv(out)
    assert list(table.columns[:6]) == ["image", "label", "ocean", "agriculture", "snow", "urban area"]
    assert len(table) == 5
    shown = capsys.readouterr().out
    assert "282D_485L_3_3.tif" in shown and "wrote 5 rows" in shown


def test_classes_from_yaml_name_the_columns(tmp_path):
    classes = tmp_path / "classes.yaml"
    classes.write_text("classes:\n  - river\n  - forest\n")
    out = tmp_path / "r.parquet"
    assert main(["classify", str(L2A_CHIPS), "--classes", str(classes), "--output", str(out), *TINY]) == 0
    assert {"river", "forest"} <= set(pd.read_parquet(out).columns)


def test_retrieve_and_embed(tmp_path):
    hits = tmp_path / "hits.csv"
    assert main(["retrieve", str(L2A_CHIPS), "--query", "Agricultural fields in a rural area",
                 "--top-k", "3", "--output", str(hits), *TINY]) == 0  # fmt: skip
    assert pd.read_csv(hits)["rank"].tolist() == [1, 2, 3]
    emb = tmp_path / "embeddings.parquet"
    assert main(["embed", str(L2A_CHIPS), "--output", str(emb), *TINY]) == 0
    table = pd.read_parquet(emb)
    assert len(table) == 5 and len(table["embedding"][0]) == 32


def test_offset_decided_by_the_data_is_said_once_in_one_line(chip_paths, tmp_path, capsys):
    for chip in chip_paths[:2]:
        write_geotiff(tmp_path / chip.name, read_array(chip), like=chip, tags={"DATETIME": "2023-06-01"})
    out = tmp_path / "r.csv"
    assert main(["classify", str(tmp_path), "--classes", "a", "b", "--output", str(out), *TINY]) == 0
    assert pd.read_csv(out)["boa_offset_source"].tolist() == ["data", "data"]
    warning = [line for line in capsys.readouterr().err.splitlines() if "BOA offset" in line]
    assert len(warning) == 1 and warning[0].startswith("msclip: warning: 2 image(s) dated on or after")


def test_skipped_inputs_are_listed_and_exit_3(chip_paths, tmp_path, capsys):
    write_geotiff(tmp_path / "good.tif", read_array(chip_paths[0]), like=chip_paths[0])
    (tmp_path / "broken.tif").write_bytes(b"garbage")
    out = tmp_path / "r.json"
    assert main(["classify", str(tmp_path), "--classes", "a", "b", "--output", str(out), *TINY]) == 3
    assert len(pd.read_json(out)) == 1
    err = capsys.readouterr().err
    assert "skipped 1 input" in err and "broken.tif" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["classify", "nowhere/", "--classes", "a"], "input not found: nowhere/"),
        (["classify", str(L2A_CHIPS), "--classes", "a", "--model", "NoSuchNet"], "unknown model 'NoSuchNet'"),
        (["classify", str(L2A_CHIPS), "--classes", "a", "--output", "x.xlsx", *TINY], "unsupported output"),
        (["convert", "absent.pt", "out.safetensors"], "checkpoint not found"),
        (["classify", str(L2A_CHIPS), "--classes", "a", "--precision", "fp16", *TINY], "fp16 needs a GPU"),
    ],
)
def test_user_errors_are_one_line(args, message, capsys):
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("msclip: error:")


def test_wrong_band_count_is_skipped_with_reason(chip_paths, tmp_path, capsys):
    np.save(tmp_path / "seven.npy", read_array(chip_paths[0])[:7])
    assert main(["classify", str(tmp_path), "--classes", "a", *TINY]) == 3
    assert "cannot tell the bands of a 7-channel image" in capsys.readouterr().err
    assert main(["classify", str(L2A_CHIPS), "--classes", "a", "--layout", "L1C", *TINY]) == 3
    err = capsys.readouterr().err
    assert (
        "skipped 5 input(s)" in err and "layout L1C (13 bands) does not match the image's 12 channels" in err
    )


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "Llama3-MS-CLIP-Base" in out and "ViT-L-14" in out and "Apache-2.0" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["retrieve", str(L2A_CHIPS), "--query", "a river", "--top-k", "-3"],
        ["retrieve", str(L2A_CHIPS), "--query", "a river", "--top-k", "0"],
        ["classify", str(L2A_CHIPS), "--classes", "a", "b", "--batch-size", "0"],
        ["index", "search", "idx", "--query", "a river", "--bbox", "10", "50", "5", "40"],
        ["index", "search", "idx", "--query", "a river", "--bbox", "10", "40", "200", "50"],
    ],
)
def test_counts_and_boxes_that_match_nothing_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, *TINY] if argv[0] != "index" else argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "must" in err and "Traceback" not in err


def test_output_that_cannot_be_written_fails_before_any_compute(tmp_path, capsys, monkeypatch):
    import msclip.cli.core as core

    monkeypatch.setattr(core, "load_model_from", lambda args: pytest.fail("model loaded"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for output in (blocker / "results.csv", blocker / "deeper" / "results.csv"):
        argv = ["classify", str(L2A_CHIPS), "--classes", "a", "b", "--output", str(output), *TINY]
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"msclip: error: cannot write output {output}: {blocker} is a file, not a folder"]


def test_output_folders_are_made_as_needed(tmp_path):
    out = tmp_path / "new" / "folder" / "r.csv"
    assert main(["classify", str(L2A_CHIPS), "--classes", "a", "b", "--output", str(out), *TINY]) == 0
    assert len(pd.read_csv(out)) == 5


def test_an_unforeseen_error_is_one_line_and_verbose_shows_it(tmp_path, capsys):
    index = tmp_path / "idx"
    index.mkdir()
    (index / "index.json").write_text("{not json")
    assert main(["index", "search", str(index), "--query", "a river"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("msclip: error: ")
    with pytest.raises(Exception):  # noqa: B017 - whatever it was, -v lets it through
        main(["-v", "index", "search", str(index), "--query", "a river"])
