"""The full ``msclip evaluate`` command on small copies of the benchmark layouts."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from msclip.bands import RGB
from msclip.cli import main
from msclip.models import ModelSpec, register_model
from tests.evaluation import layouts

#: A tiny RGB twin of msclip-tiny: stands in for the OpenCLIP RGB baselines without their size.
register_model(ModelSpec("msclip-tiny-rgb", "msclip-tiny", RGB, "Apache-2.0", "tiny RGB test model"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmark_datasets")
    layouts.eurosat_ms(root / "EuroSAT_MS", nested=False)  # 5 test images of 10, by eurosat-test.txt
    layouts.bigearthnet_v1(root / "BigEarthNet")
    layouts.meter_ml(root / "METERML_MS")
    layouts.rgb_folder(root / "RESISC45_RGB")
    return root


def evaluate(data_dir, output, *extra: str) -> int:
    return main(["evaluate", "--data-dir", str(data_dir), "--output", str(output), "--workers", "0", *extra])


def test_two_models_three_datasets_missing_one(data_dir, tmp_path, capsys):
    output = tmp_path / "results"
    code = evaluate(
        data_dir,
        output,
        "--datasets", "eurosat-ms", "bigearthnet-ms", "meterml-ms", "aid", "resisc45",
        "--models", "msclip-tiny", "msclip-tiny-rgb",
        "--random-init", "--templates", "clip",
    )  # fmt: skip
    assert code == 3  # done, but a dataset was missing (and RGB pictures cannot feed the MS model)
    err = capsys.readouterr().err
    assert "aid: not found" in err
    assert "msclip-tiny / resisc45" in err and "lacks band" in err
    results = pd.read_csv(output / "results.csv")
    pairs = set(zip(results["model"], results["dataset"], strict=True))
    assert pairs == {
        ("msclip-tiny", "eurosat-ms"),
        ("msclip-tiny", "bigearthnet-ms"),
        ("msclip-tiny", "meterml-ms"),
        ("msclip-tiny-rgb", "eurosat-ms"),
        ("msclip-tiny-rgb", "bigearthnet-ms"),
        ("msclip-tiny-rgb", "meterml-ms"),
        ("msclip-tiny-rgb", "resisc45"),  # the RGB model reads the RGB pictures as they are
    }
    ben = results[(results["dataset"] == "bigearthnet-ms") & (results["model"] == "msclip-tiny")]
    assert set(ben["metric"]) == {
        "accuracy",
        "map@100",
        "map@100_standard",
        "map_macro",
        "map_micro",
        "f1_macro",
        "f1_micro",
    }
    assert ben["n_images"].iloc[0] == 4  # the split file lists 4 of the 5 patches
    eurosat = results[results["dataset"] == "eurosat-ms"]
    assert set(eurosat["metric"]) >= {"top1_accuracy", "top5_accuracy", "balanced_accuracy", "map@100"}
    assert results["value"].dropna().between(0, 1).all()
    assert json.loads((output / "results.json").read_text())[0].keys() == set(results.columns)
    per_class = pd.read_csv(output / "per_class.csv")
    assert set(per_class[per_class["dataset"] == "meterml-ms"]["class"]) == {
        "concentrated animal feeding operations", "landfills", "coal mines", "other features",
    }  # fmt: skip
    settings = json.loads((output / "settings.json").read_text())
    assert settings["templates"]["count"] == 3 and len(settings["templates"]["sha256"]) == 64
    assert [m["name"] for m in settings["models"]] == ["msclip-tiny", "msclip-tiny-rgb"]
    assert settings["models"][1]["input"].startswith("RGB composite")
    summary = (output / "summary.md").read_text()
    assert "| msclip-tiny |" in summary and "average mAP@100" in summary and "aid: not found" in summary
    assert "Reported in the paper" in summary and "| 67.9 | 63.0 | 59.6 | 35.6 | 48.1 | 29.7 |" in summary
    assert (output / "radar.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_run_twice_gives_identical_numbers(data_dir, tmp_path):
    args = (
        "--datasets",
        "bigearthnet-ms",
        "--models",
        "msclip-tiny",
        "--templates",
        "clip",
        "--batch-size",
        "3",
    )
    assert evaluate(data_dir, tmp_path / "a", *args) == 0
    assert evaluate(data_dir, tmp_path / "b", *args, "--no-cache") == 0
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()
    assert (tmp_path / "a" / "per_class.csv").read_bytes() == (tmp_path / "b" / "per_class.csv").read_bytes()


def test_generic_folder_local_checkpoint_and_a_model_that_cannot_load(data_dir, tmp_path, capsys, tiny_model):
    """Settings trace the numbers to the exact weights: the checkpoint's path and sha256."""
    from safetensors.torch import save_file

    checkpoint = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_model.clip.state_dict().items()}, checkpoint)
    folder = data_dir / "METERML_MS"
    models = ("--models", f"msclip-tiny={checkpoint}", "no-such-model")
    assert evaluate(data_dir, tmp_path / "out", "--datasets", f"mine={folder}", *models) == 3
    assert "no-such-model: unknown model" in capsys.readouterr().err
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(zip(results["model"], results["dataset"], strict=True)) == {("msclip-tiny", "mine")}
    (model,) = json.loads((tmp_path / "out" / "settings.json").read_text())["models"]
    assert model["checkpoint"] == str(checkpoint)
    assert model["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()


def test_nothing_to_evaluate_is_an_error(data_dir, tmp_path, capsys):
    assert evaluate(data_dir, tmp_path, "--datasets", "aid", "--models", "msclip-tiny") == 1
    assert "no dataset could be evaluated" in capsys.readouterr().err


def test_unknown_dataset_name_is_a_user_error(data_dir, tmp_path, capsys):
    assert evaluate(data_dir, tmp_path, "--datasets", "imagenet", "--models", "msclip-tiny") == 1
    assert "unknown dataset 'imagenet'" in capsys.readouterr().err


@pytest.mark.slow
def test_full_size_llama3_ms_clip_architecture_with_random_weights(data_dir, tmp_path):
    """The paper's model (ViT-B/16, 10 bands) end to end, with random weights instead of the download."""
    code = evaluate(
        data_dir, tmp_path, "--datasets", "eurosat-ms", "--models", "Llama3-MS-CLIP-Base",
        "--random-init", "--templates", "clip",
    )  # fmt: skip
    assert code == 0
    results = pd.read_csv(tmp_path / "results.csv")
    assert set(results["model"]) == {"Llama3-MS-CLIP-Base"} and results["n_images"].iloc[0] == 5


def save_weights(model, path, shift: float = 0.0):
    """The model's weights as safetensors, every tensor moved by ``shift`` (a second, different checkpoint)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: (v + shift).contiguous() for k, v in model.clip.state_dict().items()}, path)
    return path


def test_two_checkpoints_of_one_model_get_a_row_each(data_dir, tmp_path, capsys, tiny_model):
    """Same name, two weights: the console table, the tables, the summary and the settings tell them apart."""
    a = save_weights(tiny_model, tmp_path / "a.safetensors")
    b = save_weights(tiny_model, tmp_path / "b.safetensors", 0.01)
    folder = data_dir / "METERML_MS"
    code = evaluate(data_dir, tmp_path / "out", "--datasets", f"mine={folder}", "--models",
                    f"msclip-tiny={a}", f"msclip-tiny={b}", "--templates", "clip")  # fmt: skip
    assert code == 0
    labels = {"msclip-tiny (a.safetensors)", "msclip-tiny (b.safetensors)"}
    out = capsys.readouterr().out
    assert all(label in out for label in labels)  # the console table
    for table in ("results", "per_class"):
        frame = pd.read_csv(tmp_path / "out" / f"{table}.csv")
        assert set(zip(frame["model"], frame["checkpoint"], strict=True)) == {
            ("msclip-tiny (a.safetensors)", str(a)),
            ("msclip-tiny (b.safetensors)", str(b)),
        }
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert all(f"| {label} |" in summary for label in labels)
    settings = json.loads((tmp_path / "out" / "settings.json").read_text())
    assert [m["label"] for m in settings["models"]] == sorted(labels)


def test_radar_draws_one_polygon_per_checkpoint(tmp_path, monkeypatch):
    import matplotlib.axes

    from msclip.evaluation.report import radar_chart
    from msclip.evaluation.runner import Evaluation

    per_class = pd.DataFrame({"class": ["a"], "support": [1], "accuracy": [1.0]})
    summary = {"top1_accuracy": 0.5, "map@100": 0.4}
    evaluations = [
        Evaluation(label, "d", "single", summary, per_class, 1, [], checkpoint)
        for label, checkpoint in (("m (a.pt)", "a.pt"), ("m (b.pt)", "b.pt"))
    ]
    drawn = []
    original = matplotlib.axes.Axes.plot
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "plot",
        lambda self, *a, **k: drawn.append(k["label"]) or original(self, *a, **k),
    )
    radar_chart(evaluations, tmp_path / "radar.png")
    assert drawn == ["m (a.pt)", "m (b.pt)"]


def test_same_checkpoint_file_name_in_two_folders_is_labelled_by_path(data_dir, tmp_path, tiny_model):
    a = save_weights(tiny_model, tmp_path / "a" / "model.safetensors")
    b = save_weights(tiny_model, tmp_path / "b" / "model.safetensors", 0.01)
    folder = data_dir / "METERML_MS"
    models = ("--models", f"msclip-tiny={a}", f"msclip-tiny={b}")
    assert evaluate(data_dir, tmp_path / "out", "--datasets", f"mine={folder}", *models) == 0
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(results["model"]) == {f"msclip-tiny ({a})", f"msclip-tiny ({b})"}


def test_the_same_model_twice_is_refused_before_any_work(data_dir, tmp_path, capsys):
    code = evaluate(data_dir, tmp_path / "out", "--datasets", "meterml-ms", "--models", "msclip-tiny",
                    "msclip-tiny")  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "msclip-tiny" in err and "twice" in err
    assert not (tmp_path / "out").exists()


def test_settings_record_the_weights_that_were_loaded(data_dir, tmp_path, tiny_model, monkeypatch):
    """A local file is a local file (path, format, sha256), a hub file is the hub file, random is random."""
    from msclip.bands import S2_10

    checkpoint = save_weights(tiny_model, tmp_path / "tiny.safetensors")
    hub_file = save_weights(tiny_model, tmp_path / "hub" / "weights.safetensors", 0.02)
    register_model(
        ModelSpec(
            "msclip-tiny-hub",
            "msclip-tiny",
            S2_10,
            "MIT",
            "hub test model",
            "org/tiny",
            "weights.safetensors",
        )
    )
    monkeypatch.setattr(
        "msclip.models.model.download", lambda spec, revision=None, sha256=None: str(hub_file)
    )
    folder = data_dir / "METERML_MS"
    models = ("--models", f"msclip-tiny={checkpoint}", "msclip-tiny-hub", "msclip-tiny")
    assert evaluate(data_dir, tmp_path / "out", "--datasets", f"mine={folder}", *models) == 0
    local, hub, fixed = json.loads((tmp_path / "out" / "settings.json").read_text())["models"]
    assert local["weights"] == "local safetensors checkpoint"
    assert local["checkpoint"] == str(checkpoint)
    assert local["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert hub["weights"] == "hf-hub:org/tiny/weights.safetensors@main"
    assert hub["checkpoint"] == str(hub_file)
    assert hub["checkpoint_sha256"] == hashlib.sha256(hub_file.read_bytes()).hexdigest()
    assert fixed["weights"] == "fixed random init (seed 0)" and fixed["checkpoint"] is None
    assert evaluate(data_dir, tmp_path / "random", "--datasets", f"mine={folder}", "--models",
                    "msclip-tiny-hub", "--random-init") == 0  # fmt: skip
    (random,) = json.loads((tmp_path / "random" / "settings.json").read_text())["models"]
    assert random["weights"] == "random init (seed 0)" and random["checkpoint"] is None


def test_a_dataset_without_one_readable_image_lists_why_and_writes_nothing(data_dir, tmp_path, capsys):
    bad = tmp_path / "bad"
    for name in ("forest", "sea"):
        (bad / name).mkdir(parents=True)
        (bad / name / f"{name}.tif").write_bytes(b"not a tiff")
    good = data_dir / "METERML_MS"
    output = tmp_path / "out"
    assert (
        evaluate(data_dir, output, "--datasets", f"bad={bad}", f"mine={good}", "--models", "msclip-tiny") == 3
    )
    captured = capsys.readouterr()
    assert "forest.tif: cannot read" in captured.err and "sea.tif: cannot read" in captured.err
    assert "msclip-tiny / bad: none of its 2 images could be read" in captured.err
    results = pd.read_csv(output / "results.csv")
    assert set(results["dataset"]) == {"mine"}
    assert "bad" not in set(pd.read_csv(output / "per_class.csv")["dataset"])
    assert "wrote results for mine to" in captured.out

    only_bad = tmp_path / "only_bad"
    models = ("--models", "msclip-tiny", "msclip-tiny-rgb")
    assert evaluate(data_dir, only_bad, "--datasets", f"bad={bad}", *models) == 3
    captured = capsys.readouterr()
    assert "wrote" not in captured.out and captured.err.count("forest.tif: cannot read") == 1
    assert not only_bad.exists()


def test_reference_band_order_is_stated_and_recorded(data_dir, tmp_path):
    args = ("--datasets", "eurosat-ms", "--models", "msclip-tiny", "--templates", "clip")
    assert evaluate(data_dir, tmp_path / "named", *args) == 0
    summary = (tmp_path / "named" / "summary.md").read_text()
    assert "selects bands by name" in summary and "B09, B12 and B8A" in summary
    assert evaluate(data_dir, tmp_path / "reference", *args, "--reference-band-order") == 0
    settings = json.loads((tmp_path / "reference" / "settings.json").read_text())
    assert settings["reference_band_order"] is True
    (eurosat,) = settings["datasets"]
    assert eurosat["layout"] == "L1C" and any("reference" in note for note in eurosat["notes"])
    assert "--reference-band-order" in (tmp_path / "reference" / "summary.md").read_text()
    named = pd.read_csv(tmp_path / "named" / "results.csv")
    reference = pd.read_csv(tmp_path / "reference" / "results.csv")
    assert not np.allclose(named["value"], reference["value"])  # other pixels in three inputs
