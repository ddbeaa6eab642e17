"""msclip adapt, then classify --head / --transductive, end to end on crops of the real example chips."""

from pathlib import Path

import pandas as pd
import pytest

import msclip.zeroshot
from msclip.adapt import load_head
from msclip.cli import main
from tests.conftest import L2A_CHIPS


@pytest.fixture
def tiny(official_tiny_checkpoint):
    return ["--model", "msclip-tiny", "--checkpoint", str(official_tiny_checkpoint), "--device", "cpu"]


def accuracy(table_path: Path) -> float:
    table = pd.read_csv(table_path)
    truth = table["image"].map(lambda p: Path(p).parent.name)
    return float((table["label"] == truth).mean())


def test_adapt_then_classify_with_the_head_beats_zero_shot_at_chance(crops, tiny, tmp_path, capsys):
    head = tmp_path / "head.safetensors"
    assert main(["adapt", str(crops / "train"), "--output", str(head), *tiny]) == 0
    assert "wrote a linear-probe head for msclip-tiny (5 classes)" in capsys.readouterr().out
    adapted, zero_shot = tmp_path / "adapted.csv", tmp_path / "zero_shot.csv"
    assert main(["classify", str(crops / "test"), "--head", str(head), "--output", str(adapted), *tiny]) == 0
    names = sorted(p.name for p in (crops / "train").iterdir())
    assert (
        main(["classify", str(crops / "test"), "--classes", *names, "--output", str(zero_shot), *tiny]) == 0
    )
    assert accuracy(zero_shot) <= 0.4  # random weights: chance is 0.2
    assert accuracy(adapted) >= 0.9
    assert load_head(head).shots == dict.fromkeys(names, 8)


@pytest.mark.parametrize("method", ["tip-adapter", "tip-adapter-f", "knn"])
def test_every_method_makes_a_head_that_classify_reads(method, crops, tiny, tmp_path):
    head, out = tmp_path / "head.safetensors", tmp_path / "out.csv"
    assert main(["adapt", str(crops / "train"), "--method", method, "--output", str(head), *tiny]) == 0
    assert main(["classify", str(crops / "test"), "--head", str(head), "--output", str(out), *tiny]) == 0
    assert load_head(head).method == method
    assert accuracy(out) >= (
        0.8 if method == "knn" else 0.5
    )  # near-identical random embeddings blunt the cache


def test_embeddings_are_cached_per_file_so_a_second_method_does_not_encode(
    crops, tiny, tmp_path, monkeypatch
):
    assert main(["adapt", str(crops / "train"), "--output", str(tmp_path / "a.safetensors"), *tiny]) == 0
    encoded: list[str] = []
    real = msclip.zeroshot.embed_batches

    def counting(model, inputs, *args, **kwargs):
        encoded.extend(inputs)
        return real(model, inputs, *args, **kwargs)

    monkeypatch.setattr(msclip.zeroshot, "embed_batches", counting)
    assert (
        main(
            [
                "adapt",
                str(crops / "train"),
                "--method",
                "knn",
                "--output",
                str(tmp_path / "b.safetensors"),
                *tiny,
            ]
        )
        == 0
    )
    assert encoded == []
    touched = next((crops / "train").rglob("*.tif"))
    touched.touch()  # a new mtime: that file (only) is encoded again
    assert (
        main(
            [
                "adapt",
                str(crops / "train"),
                "--method",
                "knn",
                "--output",
                str(tmp_path / "c.safetensors"),
                *tiny,
            ]
        )
        == 0
    )
    assert encoded == [str(touched)]


def test_transductive_classify_runs_with_classes_and_with_a_head(crops, tiny, tmp_path):
    head = tmp_path / "head.safetensors"
    assert main(["adapt", str(crops / "train"), "--method", "knn", "--output", str(head), *tiny]) == 0
    out = tmp_path / "t.csv"
    assert (
        main(
            [
                "classify",
                str(crops / "test"),
                "--head",
                str(head),
                "--transductive",
                "--output",
                str(out),
                *tiny,
            ]
        )
        == 0
    )
    assert accuracy(out) >= 0.8 and len(pd.read_csv(out)) == 40
    assert (
        main(
            [
                "classify",
                str(crops / "test"),
                "--classes",
                "a",
                "b",
                "--transductive",
                "--output",
                str(out),
                *tiny,
            ]
        )
        == 0
    )
    table = pd.read_csv(out)
    assert len(table) == 40 and ((table["a"] + table["b"]) - 1).abs().max() < 1e-5


def test_a_table_with_a_split_column_trains_on_its_train_rows(crops, tiny, tmp_path):
    rows = [
        {"image": str(p.relative_to(crops)), "label": p.parent.name, "split": p.parts[-3]}
        for p in sorted(crops.rglob("*.tif"))
    ]
    table = crops / "labels.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    head = tmp_path / "head.safetensors"
    assert main(["adapt", str(table), "--method", "knn", "--output", str(head), *tiny]) == 0
    assert sum(load_head(head).shots.values()) == 40
    table.unlink()


def test_a_table_giving_an_image_two_labels_is_refused(tmp_path):
    from msclip.adapt import read_examples
    from msclip.errors import MSClipError

    table = tmp_path / "labels.csv"
    table.write_text("image,label\na.tif,water\nb.tif,snow\na.tif,snow\n")
    with pytest.raises(MSClipError, match="image listed with two labels: .*a.tif"):
        read_examples(str(table))


def test_a_bad_image_is_named_skipped_and_the_head_still_written(crops, tiny, tmp_path, capsys):
    import shutil

    train = tmp_path / "train"
    shutil.copytree(crops / "train", train)
    (train / next(iter(sorted(p.name for p in train.iterdir()))) / "broken.tif").write_bytes(b"garbage")
    head = tmp_path / "head.safetensors"
    assert main(["adapt", str(train), "--method", "knn", "--output", str(head), *tiny]) == 3
    assert head.is_file() and "broken.tif" in capsys.readouterr().err


def test_a_head_is_refused_by_another_model_in_one_line(crops, tiny, tmp_path, capsys):
    head = tmp_path / "head.safetensors"
    assert main(["adapt", str(crops / "train"), "--method", "knn", "--output", str(head), *tiny]) == 0
    capsys.readouterr()
    other = ["--model", "msclip-tiny", "--device", "cpu"]  # same architecture, no checkpoint file
    assert main(["classify", str(crops / "test"), "--head", str(head), *other]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("msclip: error")]
    assert (
        len(errors) == 1 and "made for model 'msclip-tiny'" in errors[0] and "checkpoint sha256" in errors[0]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["adapt", "nowhere", "--output", "h.safetensors"], "give a folder with one sub-folder per class"),
        (["adapt", ".", "--method", "svm", "--output", "h.safetensors"], "unknown method 'svm'"),
        (["adapt", ".", "--output", "head.pt"], "a head is a .safetensors file"),
        (["classify", str(L2A_CHIPS), "--head", "missing.safetensors"], "head file not found"),
        (["classify", str(L2A_CHIPS), "--head", "h.safetensors", "--classes", "a"], "either --classes"),
        (["classify", str(L2A_CHIPS)], "either --classes"),
    ],
)
def test_bad_runs_fail_in_one_line_before_loading_a_model(args, message, capsys, monkeypatch):
    import msclip.models.model

    monkeypatch.setattr(msclip.models.model, "load_model", lambda *a, **k: pytest.fail("loaded a model"))
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
