"""``msclip train`` from a YAML config with overrides; its exported model works in ``msclip classify``."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import yaml

from msclip import load_model
from msclip.cli import main
from msclip.training.checkpoints import load_training_state
from tests.conftest import L2A_CHIPS


def test_train_then_classify_with_the_exported_checkpoint(pairs_table, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    options = {
        "model": "msclip-tiny",
        "bands": None,
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


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "--model", "msclip-tiny", "--bands", "none", "--random-init", "true"]) == 1
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
        "--bands",
        "none",
        "--pretrained",
        "none",
        "--random-init",
        "true",
    ]
    args += ["--data", str(table), "--batch-size", "5", "--steps", "1", "--device", "cpu"]
    assert main([*args, "--output", str(tmp_path / "run")]) == 3  # done, but an input was skipped
    assert "missing.tif" in capsys.readouterr().err
