"""One failure policy for every command, run over a corpus of bad inputs mixed with the good chips.

A bad input is named and skipped (exit 3) while the good ones are written; a bad run is one line (exit 1 or 2)
before any work; never a traceback.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window

from msclip.cli import main
from tests.conftest import L2A_CHIPS
from tests.helpers import read_array, write_geotiff

TINY = ["--model", "msclip-tiny", "--device", "cpu", "--workers", "0"]


def _huge_header(path):
    """12 x 100000 x 100000 declared, one block written: 1 MB on disk."""
    profile = {"driver": "GTiff", "count": 12, "height": 100_000, "width": 100_000, "dtype": "int16"}
    profile |= {"tiled": True, "compress": "deflate", "sparse_ok": True, "crs": "EPSG:32633"}
    with rasterio.open(path, "w", transform=Affine(10, 0, 5e5, 0, -10, 4e6), **profile) as dst:
        dst.write(np.ones((12, 256, 256), np.int16), window=Window(0, 0, 256, 256))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Good chips and bad files in one folder; the bad ones by name."""
    folder = tmp_path_factory.mktemp("corpus")
    good = sorted(L2A_CHIPS.glob("*.tif"))
    for chip in good:
        shutil.copy(chip, folder / chip.name)
    chip = good[0]
    bad = {
        "text.tif": lambda p: p.write_text("not a raster"),
        "empty.tif": lambda p: p.write_bytes(b""),
        "cut.tif": lambda p: p.write_bytes(chip.read_bytes()[:4000]),
        "nodata.tif": lambda p: write_geotiff(p, np.zeros_like(read_array(chip)), like=chip),
        "nan.npy": lambda p: np.save(p, np.full((12, 32, 32), np.nan, np.float32)),
        "five_channels.npy": lambda p: np.save(p, np.ones((5, 32, 32), np.int16)),
        "object.npy": lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True),
        "picture.png": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n broken"),
    }
    for name, make in bad.items():
        make(folder / name)
    return folder, [p.name for p in good], sorted(bad)


def _assert_named_skips(err: str, bad: list[str]) -> None:
    assert "Traceback" not in err
    assert f"skipped {len(bad)} input(s)" in err
    for name in bad:
        assert name in err, f"{name} not named in:\n{err}"


@pytest.mark.parametrize(
    "command",
    [
        ["classify", "--classes", "ocean", "snow", "--output", "{out}.csv"],
        ["retrieve", "--query", "a river", "--top-k", "20", "--output", "{out}.csv"],
        ["embed", "--output", "{out}.parquet"],
    ],
    ids=["classify", "retrieve", "embed"],
)
def test_chip_commands_skip_and_name_every_bad_input(corpus, tmp_path, capsys, command):
    folder, good, bad = corpus
    out = str(tmp_path / "out")
    inputs = [str(folder)]
    if (
        command[0] != "embed"
    ):  # embed maps a raster this large as a scene (and refuses scenes mixed with chips)
        _huge_header(tmp_path / "huge.tif")
        inputs.append(str(tmp_path / "huge.tif"))
        bad = [*bad, "huge.tif"]
    argv = [command[0], *inputs, *(c.format(out=out) for c in command[1:]), *TINY]
    assert main(argv) == 3
    _assert_named_skips(capsys.readouterr().err, bad)
    output = next(tmp_path.glob("out.*"))
    table = pd.read_parquet(output) if output.suffix == ".parquet" else pd.read_csv(output)
    assert sorted({p.rsplit("/", 1)[-1] for p in table["image"]}) == good


def test_index_search_like_images_skips_bad_examples(corpus, tmp_path, capsys):
    folder, good, bad = corpus
    embeddings = tmp_path / "e.parquet"
    assert main(["embed", str(L2A_CHIPS), "--output", str(embeddings), *TINY]) == 0
    assert main(["index", "build", str(embeddings), "--output", str(tmp_path / "idx")]) == 0
    capsys.readouterr()
    like = [str(folder / good[0]), str(folder / bad[0])]
    argv = ["index", "search", str(tmp_path / "idx"), "--like", *like, "--output", str(tmp_path / "h.csv")]
    assert main([*argv, "--device", "cpu"]) == 3
    _assert_named_skips(capsys.readouterr().err, [bad[0]])
    assert len(pd.read_csv(tmp_path / "h.csv")) > 0


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (
            ["classify", "{chips}", "--classes", "a", "--output", "{blocker}/r.csv"],
            1,
            "is a file, not a folder",
        ),
        (["classify", "{chips}", "--classes", "a", "--output", "r.txt"], 1, "unsupported output type"),
        (["classify", "{missing}", "--classes", "a"], 1, "input not found"),
        (["classify", "{chips}", "--classes", "a", "--model", "no-such-model"], 1, "no-such-model"),
        (["classify", "{chips}", "--classes", "a", "--layout", "L3A"], 2, "invalid choice"),
        (["classify", "{chips}", "--classes", "a", "--bands", "B02", "B99"], 1, "B99"),
        (["classify", "{chips}", "--classes", "a", "--input-bands", "B02", "B99"], 1, "B99"),
        (["retrieve", "{chips}", "--query", "a", "--top-k", "-3"], 2, "at least 1"),
        (["embed", "{chips}", "--output", "{blocker}/e.parquet"], 1, "is a file, not a folder"),
        (
            ["map", "{chips}/x.tif", "--classes", "a", "--output", "{blocker}/m.tif"],
            1,
            "is a file, not a folder",
        ),
        (["evaluate", "--datasets", "eurosat-ms", "--output", "{blocker}/r"], 1, "is a file, not a folder"),
        (["index", "search", "{missing}", "--query", "a"], 1, "not an msclip index"),
        (["evaluate", "--datasets", "eurosat-ms", "--output", "o", "--shots", "0"], 2, "at least 1"),
        (
            ["evaluate", "--datasets", "eurosat-ms", "--output", "o", "--shots", "2", "--seeds", "0"],
            2,
            "at least 1",
        ),
        (["map", "{chips}/x.tif", "--classes", "a", "--min-valid", "1.5"], 2, "between 0 and 1"),
        (["map", "{chips}/x.tif", "--classes", "a", "--max-cloud", "nan"], 2, "expected a number"),
        (["adapt", "{chips}", "--output", "h.safetensors", "--k", "0"], 2, "at least 1"),
    ],
)
def test_bad_runs_are_one_line_before_any_work(tmp_path, capsys, argv, code, message):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    values = {"chips": str(L2A_CHIPS), "blocker": str(blocker), "missing": str(tmp_path / "missing")}
    argv = [a.format(**values) for a in argv]
    try:
        got = main([*argv, "--device", "cpu"] if argv[0] not in ("evaluate", "index") else argv)
    except SystemExit as exit_:  # argparse's own errors
        got = exit_.code
    err = capsys.readouterr().err
    assert got == code and message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("msclip")]) == 1


def test_evaluate_names_bad_images_of_a_dataset_and_scores_the_rest(corpus, tmp_path, capsys):
    folder, good, _ = corpus
    root = tmp_path / "classes"
    for name in ("coast", "fields"):
        (root / name).mkdir(parents=True)
    for i, chip in enumerate(good):
        shutil.copy(folder / chip, root / ("coast" if i % 2 else "fields") / chip)
    shutil.copy(folder / "text.tif", root / "coast" / "text.tif")
    argv = ["evaluate", "--datasets", f"mine={root}", "--models", "msclip-tiny", "--workers", "0"]
    assert main([*argv, "--device", "cpu", "--output", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert "text.tif" in err and "Traceback" not in err
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert (results["n_images"] == len(good)).all() and (results["n_skipped"] == 1).all()


def test_train_names_unusable_pairs_and_trains_on_the_rest(corpus, tmp_path, capsys):
    folder, good, _ = corpus
    rows = [{"image": str(folder / chip), "caption": f"a view of {chip}"} for chip in good]
    rows += [{"image": str(folder / "cut.tif"), "caption": "a field"}, {"image": "", "caption": "a lake"}]
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    argv = [
        "train",
        "--model",
        "msclip-tiny",
        "--model-bands",
        "none",
        "--random-init",
        "true",
        "--pretrained",
        "none",
    ]
    argv += [
        "--data",
        str(tmp_path / "pairs.csv"),
        "--batch-size",
        "4",
        "--steps",
        "2",
        "--warmup-steps",
        "1",
    ]
    assert main([*argv, "--device", "cpu", "--output", str(tmp_path / "run")]) == 3
    err = capsys.readouterr().err
    assert "cut.tif" in err and "pairs.csv row 8: no image path" in err and "Traceback" not in err
    assert (tmp_path / "run" / "model.safetensors").is_file()
