"""The full ``msclip evaluate`` command on small copies of the benchmark layouts."""

from __future__ import annotations

import hashlib
import json

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
