"""evaluate --shots: seeded draws of shots, disjoint from the test images; curves rise with the shots."""

from pathlib import Path

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
    ("extra", "message", "code"),
    [(["--methods", "svm"], "unknown method(s) svm", 1), (["--seeds", "0"], "at least 1", 2)],
)
def test_evaluate_shots_refuses_bad_options_in_one_line(extra, message, code, tmp_path, capsys):
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
    try:
        got = main(args)
    except SystemExit as exit_:  # argparse's own option errors
        got = exit_.code
    assert got == code
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


def test_with_a_training_split_shots_come_only_from_it_and_the_whole_test_split_is_scored(monkeypatch):
    import msclip.adapt

    features, labels, text = synthetic_set(per_class=40)
    train_rows, test_rows = np.arange(0, len(labels), 2), np.arange(1, len(labels), 2)
    test_set = (features[test_rows], labels[test_rows])
    drawn: list[torch.Tensor] = []
    fit_head = msclip.adapt.fit_head

    def recording_fit_head(shots, *args, **kwargs):
        drawn.append(shots.features)
        return fit_head(shots, *args, **kwargs)

    monkeypatch.setattr(msclip.adapt, "fit_head", recording_fit_head)
    args = (features[train_rows], labels[train_rows], text, [1, 4], ["zero-shot", "linear-probe"], 2)
    runs = few_shot_accuracies(*args, test_set=test_set)
    train_set = {tuple(row.tolist()) for row in features[train_rows]}
    assert drawn and all(tuple(row.tolist()) in train_set for shots in drawn for row in shots)
    assert [len(d) for d in drawn] == [5, 20, 5, 20]  # 5 classes x 1 and 4 shots, per seed
    zero_shot = ((features[test_rows] @ text.T).argmax(-1).numpy() == labels[test_rows]).mean()
    scores = runs[runs["method"] == "zero-shot"]["score"]
    assert scores.tolist() == pytest.approx([zero_shot, zero_shot])  # all test images, every seed
    pd.testing.assert_frame_equal(runs, few_shot_accuracies(*args, test_set=test_set))  # same per seed


def test_multi_label_curves_with_a_training_split_score_the_whole_test_split():
    features, targets, text = multi_label_set()
    test_set = (features[200:], targets[200:])
    runs = few_shot_map(
        features[:200], targets[:200], text, [1, 4], ["zero-shot", "linear-probe"], 2, test_set
    )
    expected = mean_average_precision((features[200:] @ text.T).numpy(), targets[200:])
    assert runs[runs["method"] == "zero-shot"]["score"].tolist() == pytest.approx([expected, expected])
    pd.testing.assert_frame_equal(
        runs,
        few_shot_map(features[:200], targets[:200], text, [1, 4], ["zero-shot", "linear-probe"], 2, test_set),
    )


def test_evaluate_shots_draws_from_the_published_training_split_and_says_where_shots_came_from(
    tmp_path, monkeypatch, capsys
):
    """EuroSAT has eurosat-train.txt: the shots' files are exactly its images and the test set is the test
    list; METER-ML without a train/ tree falls back to held-out test draws, and both are written down."""
    import json

    import msclip.evaluation.runner as runner
    from tests.evaluation import layouts

    test = layouts.eurosat_ms(tmp_path / "data" / "EuroSATallBands")
    layouts.meter_ml(tmp_path / "data" / "METERML_MS", train=False)
    listed = (tmp_path / "data" / "EuroSATallBands" / "eurosat-train.txt").read_text().split()
    embedded_sets = []
    embed_set = runner.embed_set

    def recording_embed_set(model, dataset, *args, **kwargs):
        embedded_sets.append((dataset.name, sorted(Path(s.name).name for s in dataset.samples)))
        return embed_set(model, dataset, *args, **kwargs)

    monkeypatch.setattr(runner, "embed_set", recording_embed_set)
    out = tmp_path / "out"
    args = ["evaluate", "--data-dir", str(tmp_path / "data"), "--datasets", "eurosat-ms", "meterml-ms",
            "--models", "msclip-tiny", "--device", "cpu", "--workers", "0", "--shots", "1", "--methods",
            "zero-shot", "linear-probe", "--seeds", "2", "--output", str(out)]  # fmt: skip
    assert main(args) == 0
    eurosat = [files for name, files in embedded_sets if name == "eurosat-ms"]
    assert eurosat == [sorted(test), sorted(f"{Path(n).stem}.tif" for n in listed)]  # test, then train
    assert len([name for name, _ in embedded_sets if name == "meterml-ms"]) == 1
    settings = json.loads((out / "settings.json").read_text())["datasets"]
    assert settings["eurosat-ms"]["shots from"] == "train split (eurosat-train.txt)"
    assert "whole test split (eurosat-test.txt)" in settings["eurosat-ms"]["test set"]
    assert settings["meterml-ms"]["shots from"] == "test split, held out per seed (no train split found)"
    summary = (out / "summary.md").read_text()
    assert "Shots from: train split (eurosat-train.txt)" in summary
    assert "Shots from: test split, held out per seed (no train split found)" in summary


def test_a_training_list_naming_no_image_on_disk_is_reported_and_the_test_split_is_used(tmp_path, capsys):
    from tests.evaluation import layouts

    layouts.eurosat_ms(tmp_path / "data" / "EuroSATallBands")
    (tmp_path / "data" / "EuroSATallBands" / "eurosat-train.txt").write_text("Gone_1.jpg\n")
    args = ["evaluate", "--data-dir", str(tmp_path / "data"), "--datasets", "eurosat-ms", "--models",
            "msclip-tiny", "--device", "cpu", "--workers", "0", "--shots", "1", "--methods", "zero-shot",
            "knn", "--seeds", "1", "--output", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 3
    assert "training split: eurosat-ms: no class folders with images" in capsys.readouterr().err
    assert "no train split found" in (tmp_path / "out" / "summary.md").read_text()


def test_a_set_with_too_few_images_per_class_is_named_and_skipped_not_a_crash(tmp_path, capsys):
    """METER-ML here: 5 images over 4 classes, no training split; 2 shots + 1 test image fit no class."""
    from tests.evaluation import layouts

    layouts.eurosat_ms(tmp_path / "data" / "EuroSATallBands")
    layouts.meter_ml(tmp_path / "data" / "METERML_MS", train=False)
    args = ["evaluate", "--data-dir", str(tmp_path / "data"), "--datasets", "eurosat-ms", "meterml-ms",
            "--models", "msclip-tiny", "--device", "cpu", "--workers", "0", "--shots", "2", "--methods",
            "zero-shot", "knn", "--seeds", "1", "--output", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 3
    assert "meterml-ms: no class has the 3 labelled images that 2 shots need" in capsys.readouterr().err
    assert set(pd.read_csv(tmp_path / "out" / "few_shot.csv")["dataset"]) == {"eurosat-ms"}
