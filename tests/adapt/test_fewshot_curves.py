"""evaluate --shots: seeded draws of shots, disjoint from the test images; curves rise with the shots."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from msclip.cli import main
from msclip.evaluation.fewshot import (
    few_shot_accuracies,
    few_shot_map,
    mean_average_precision,
    shot_order,
    summarise,
)


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
    summary = summarise(runs).set_index(["method", "shots"])["score_mean"]
    for method in ("linear-probe", "tip-adapter"):
        curve = summary[method].sort_index().to_numpy()
        assert (np.diff(curve) >= -0.01).all(), (method, curve)
        assert curve[-1] > curve[0] + 0.05 and curve[-1] > summary[("zero-shot", 0)]
    assert set(runs["classes"]) == {5}


def multi_label_set(n_classes=4, n_images=240, dim=64, seed=0):
    """Each image shows one to three classes: the normalised sum of their directions plus noise."""
    generator = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(n_classes, dim, generator=generator), dim=-1)
    targets = torch.rand(n_images, n_classes, generator=generator) < 0.35
    targets[targets.sum(1) == 0, 0] = True
    features = F.normalize(
        targets.float() @ centres + 0.25 * torch.randn(n_images, dim, generator=generator), dim=-1
    )
    text = F.normalize(
        centres + 1.5 * torch.randn(n_classes, n_classes, generator=generator) @ centres, dim=-1
    )
    return features, targets.numpy(), text


def test_mean_average_precision_by_hand():
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 0]], dtype=bool)
    scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.3, 0.2], [0.1, 0.9]])
    # class 0: positives ranked 1st and 3rd -> (1 + 2/3) / 2; class 1: its positive ranked 2nd -> 1/2
    assert mean_average_precision(scores, targets) == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)


def test_multi_label_curves_use_one_vs_rest_heads_and_rise_with_the_shots():
    features, targets, text = multi_label_set()
    methods = ["zero-shot", "linear-probe", "tip-adapter", "knn"]
    runs = few_shot_map(features, targets, text, [1, 4, 16], methods, 3)
    pd.testing.assert_frame_equal(runs, few_shot_map(features, targets, text, [1, 4, 16], methods, 3))
    assert set(runs["metric"]) == {"mAP"}
    summary = summarise(runs).set_index(["method", "shots"])["score_mean"]
    for method in ("linear-probe", "tip-adapter"):
        assert (
            summary[(method, 16)] > summary[(method, 1)] and summary[(method, 16)] > summary[("zero-shot", 0)]
        )


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
    assert (summary["seeds"] == 2).all() and {"score_mean", "score_std", "model", "dataset"} <= set(summary)
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


def test_evaluate_shots_on_a_multi_label_set_reports_map_and_methods_without_a_multi_label_form(
    tmp_path, capsys
):
    from tests.evaluation import layouts

    layouts.bigearthnet_v1(tmp_path / "data" / "BigEarthNet")
    args = ["evaluate", "--data-dir", str(tmp_path / "data"), "--datasets", "bigearthnet-ms", "--models",
            "msclip-tiny", "--device", "cpu", "--workers", "0", "--shots", "1", "--methods", "zero-shot",
            "linear-probe", "tip-adapter-f", "--seeds", "1", "--output", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 3
    summary = pd.read_csv(tmp_path / "out" / "few_shot.csv")
    assert set(summary["metric"]) == {"mAP"} and set(summary["method"]) == {"zero-shot", "linear-probe"}
    assert "tip-adapter-f: no multi-label form" in capsys.readouterr().err
