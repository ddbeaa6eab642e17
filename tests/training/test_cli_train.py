"""``msclip train`` from a YAML config with overrides; its exported model works in ``msclip classify``."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml

from msclip import load_model
from msclip.cli import main
from msclip.training.checkpoints import load_training_state
from msclip.training.config import make_config
from tests.conftest import L2A_CHIPS


def test_train_then_classify_with_the_exported_checkpoint(pairs_table, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    options = {
        "model": "msclip-tiny",
        "model_bands": None,
        "pretrained": None,
        "random_init": True,
        "data": pairs_table,
        "batch_size": 4,
        "steps": 50,  # overridden below
        "warmup_steps": 1,
        "device": "cpu",
        "save_every": 2,
    }
    config.write_text(yaml.safe_dump(options))
    out = tmp_path / "run"
    code = main(["train", "--config", str(config), "--steps", "2", "--output", str(out), "--lr", "1e-4"])
    assert code == 0
    assert "trained 2 steps" in capsys.readouterr().err
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["steps"] == 2 and resolved["lr"] == 1e-4 and resolved["batch_size"] == 4
    assert load_training_state(out / "checkpoints" / "step_00000002.pt")["config"] == resolved

    official = load_model("msclip-tiny", str(out / "model.pt"), device="cpu").clip.state_dict()
    tensors = load_model("msclip-tiny", str(out / "model.safetensors"), device="cpu").clip.state_dict()
    trained = load_training_state(out / "checkpoints" / "step_00000002.pt")["model"]
    for name, tensor in trained.items():
        assert torch.equal(official[name], tensor) and torch.equal(tensors[name], tensor), name

    table = tmp_path / "classes.csv"
    args = ["classify", str(L2A_CHIPS), "--model", "msclip-tiny", "--checkpoint", str(out / "model.pt")]
    assert main([*args, "--classes", "ocean", "snow", "--device", "cpu", "--output", str(table)]) == 0
    assert len(pd.read_csv(table)) == 5


def test_old_bands_spelling_still_names_the_model_bands_with_a_note(capsys):
    """train's --bands named the model's bands; --model-bands does now, --bands still works and says so."""
    assert main(["train", "--bands", "B02", "B03", "B04", "--print-config"]) == 0
    out, err = capsys.readouterr()
    assert "training option bands is deprecated: use model_bands (--model-bands)" in err
    printed = yaml.safe_load(out)
    assert printed["model_bands"] == ["B02", "B03", "B04"] and "bands" not in printed
    with pytest.warns(FutureWarning):
        config = make_config(overrides={"bands": ["B04"], "input_bands": ["B04", "B03", "B02"]})
    assert config.model_bands == ["B04"] and config.input_bands == ["B04", "B03", "B02"]


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "--model", "msclip-tiny", "--model-bands", "none", "--random-init", "true"]) == 1
    assert "no training data" in capsys.readouterr().err
    config = tmp_path / "bad.yaml"
    config.write_text("learning_rate: 0.1\n")
    assert main(["train", "--config", str(config)]) == 1
    assert "unknown training option(s): learning_rate" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--lr", "fast"])


def test_an_unreadable_chip_is_reported_and_replaced(tmp_path, capsys):
    table = tmp_path / "pairs.csv"
    rows = [{"image": str(p), "caption": p.stem} for p in sorted(L2A_CHIPS.glob("*.tif"))[:4]]
    rows.append({"image": str(tmp_path / "missing.tif"), "caption": "gone"})
    pd.DataFrame(rows).to_csv(table, index=False)
    args = [
        "train",
        "--model",
        "msclip-tiny",
        "--model-bands",
        "none",
        "--pretrained",
        "none",
        "--random-init",
        "true",
    ]
    args += ["--data", str(table), "--batch-size", "5", "--steps", "1", "--device", "cpu"]
    assert main([*args, "--output", str(tmp_path / "run")]) == 3  # done, but an input was skipped
    assert "missing.tif" in capsys.readouterr().err


def test_exported_files_record_the_model_so_checkpoint_alone_is_enough(pairs_table, tmp_path, capsys):
    """msclip-tiny on four bands (not the default ViT-B-16 on ten): classify needs no --model."""
    out = tmp_path / "run"
    args = [
        "train",
        "--model",
        "msclip-tiny",
        "--model-bands",
        "B02",
        "B03",
        "B04",
        "B08",
        "--pretrained",
        "none",
    ]
    args += ["--random-init", "true", "--data", pairs_table, "--batch-size", "4", "--steps", "1"]
    assert main([*args, "--device", "cpu", "--output", str(out)]) == 0
    recorded = json.loads((out / "model.json").read_text())
    assert recorded["arch"] == "msclip-tiny" and recorded["bands"] == ["B02", "B03", "B04", "B08"]
    assert recorded["mean"][0] == pytest.approx(925.161) and recorded["std"][3] == pytest.approx(1491.141)

    trained = load_model(checkpoint=str(out / "model.pt"), device="cpu")
    assert trained.spec.arch == "msclip-tiny" and trained.bands == ("B02", "B03", "B04", "B08")
    assert trained.spec.mean == tuple(recorded["mean"])
    classify = ["classify", str(L2A_CHIPS), "--classes", "ocean", "snow", "--device", "cpu"]
    for name in ("model.pt", "model.safetensors"):
        table = tmp_path / f"{name}.csv"
        assert main([*classify, "--checkpoint", str(out / name), "--output", str(table)]) == 0, name
        assert len(pd.read_csv(table)) == 5
    converted = tmp_path / "converted.safetensors"
    assert main(["convert", str(out / "model.pt"), str(converted)]) == 0  # the record travels along
    assert load_model(checkpoint=str(converted), device="cpu").bands == ("B02", "B03", "B04", "B08")


def test_a_checkpoint_without_a_record_asks_for_model(tmp_path, capsys):
    state = load_model("msclip-tiny", device="cpu").clip.state_dict()
    torch.save(state, tmp_path / "weights.pt")
    args = ["classify", str(L2A_CHIPS), "--classes", "ocean", "--device", "cpu"]
    assert main([*args, "--checkpoint", str(tmp_path / "weights.pt")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and "pass --model" in err[0]
    assert main([*args, "--checkpoint", str(tmp_path / "weights.pt"), "--model", "msclip-tiny"]) == 0


def test_rows_without_a_pair_are_named_not_dropped_silently(pairs_table, tmp_path, capsys):
    table = pd.read_csv(pairs_table)
    extra = [
        {"image": table["image"][0], "caption": ""},
        {"image": table["image"][0], "caption": "   "},
        {"image": "", "caption": "fields"},
    ]
    pairs = tmp_path / "pairs.csv"
    pd.concat([table, pd.DataFrame(extra)], ignore_index=True).to_csv(pairs, index=False)
    rows = len(table)
    args = [
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
    args += [
        "--data",
        str(pairs),
        "--batch-size",
        "4",
        "--steps",
        "1",
        "--warmup-steps",
        "1",
        "--device",
        "cpu",
    ]
    assert main([*args, "--output", str(tmp_path / "run")]) == 3
    err = capsys.readouterr().err
    assert f"pairs.csv row {rows + 2}: empty caption" in err and f"row {rows + 3}: empty caption" in err
    assert f"pairs.csv row {rows + 4}: no image path" in err


def test_an_unknown_widening_is_one_line(capsys):
    assert main(["train", "--model", "msclip-tiny", "--widen-init", "foo", "--data", "x.csv"]) == 1
    assert capsys.readouterr().err.strip() == "msclip: error: unknown widen_init 'foo'; use zeros or mean"
