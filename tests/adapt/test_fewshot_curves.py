"""evaluate --shots: seeded draws of shots, disjoint from the test images; curves rise with the shots."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from msclip.cli import main
from msclip.evaluation.fewshot import few_shot_accuracies, shot_order, summarise


def synthetic_set(n_classes=5, per_class=48, dim=64, seed=0):
    """Separable clusters with overlapping noise; a text classifier that mixes the classes up."""
    generator = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(n_classes, dim, generator=generator), dim=-1)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    features = F.normalize(
        centres[labels] + 0.18 * torch.randn(len(labels), dim, generator=generator), dim=-1
    )
    text = F.normalize(
        centres + 1.5 * torch.randn(n_classes, n_classes, generator=generator) @ centres, dim=-1
    )
    return features, labels.numpy(), text


def test_shot_order_is_a_seeded_permutation_of_each_class():
    labels = np.array([0, 1, 0, 1, 0, 2])
    first, again, other = shot_order(labels, 3, 7), shot_order(labels, 3, 7), shot_order(labels, 3, 8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert [sorted(o.tolist()) for o in first] == [[0, 2, 4], [1, 3], [5]]
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_curves_are_deterministic_per_seed():
    features, labels, text = synthetic_set()
    args = (features, labels, text, [1, 4], ["zero-shot", "linear-probe", "tip-adapter-f"], 2)
    pd.testing.assert_frame_equal(few_shot_accuracies(*args), few_shot_accuracies(*args))


def test_curves_rise_with_the_shots_in_expectation_on_a_separable_set():
    features, labels, text = synthetic_set()
    runs = few_shot_accuracies(
        features, labels, text, [1, 2, 4, 8, 16], ["zero-shot", "linear-probe", "tip-adapter"], 5
    )
    summary = summarise(runs).set_index(["method", "shots"])["accuracy_mean"]
    for method in ("linear-probe", "tip-adapter"):
        curve = summary[method].sort_index().to_numpy()
        assert (np.diff(curve) >= -0.01).all(), (method, curve)
        assert curve[-1] > curve[0] + 0.05 and curve[-1] > summary[("zero-shot", 0)]
    assert set(runs["classes"]) == {5}


def test_evaluate_shots_writes_tables_summary_and_a_curve(crops, tmp_path, capsys):
    out = tmp_path / "few"
    args = ["evaluate", "--datasets", str(crops / "train"), "--models", "msclip-tiny", "--device", "cpu",
            "--shots", "1", "2", "--methods", "zero-shot", "linear-probe", "knn", "--seeds", "2",
            "--output", str(out)]  # fmt: skip
    assert main(args) == 0
    summary = pd.read_csv(out / "few_shot.csv")
    assert set(zip(summary["method"], summary["shots"], strict=True)) == {
        ("zero-shot", 0),
        ("linear-probe", 1),
        ("linear-probe", 2),
        ("knn", 1),
        ("knn", 2),
    }
    assert (summary["seeds"] == 2).all() and {"accuracy_mean", "accuracy_std", "model", "dataset"} <= set(
        summary
    )
    assert len(pd.read_csv(out / "few_shot_runs.csv")) == 2 * 5
    assert "± " in (out / "summary.md").read_text() and list(out.glob("few_shot_*.png"))


@pytest.mark.parametrize(
    ("extra", "message"), [(["--methods", "svm"], "unknown method(s) svm"), (["--seeds", "0"], "at least 1")]
)
def test_evaluate_shots_refuses_bad_options_in_one_line(extra, message, tmp_path, capsys):
    args = [
        "evaluate",
        "--datasets",
        "x",
        "--models",
        "msclip-tiny",
        "--shots",
        "1",
        *extra,
        "--output",
        str(tmp_path),
    ]
    assert main(args) == 1
    assert message in capsys.readouterr().err
