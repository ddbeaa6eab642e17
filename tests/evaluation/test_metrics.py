"""Metrics against values computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msclip.evaluation.metrics import (
    average_precision_at_k,
    mean_of_others_predictions,
    multi_label_metrics,
    single_label_metrics,
    top_k_accuracy,
)

# One query over five images; relevant images sit at ranks 2, 4 and 5.
QUERY = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
RELEVANT = np.array([0, 1, 0, 1, 1], dtype=bool)


def test_ap_over_the_whole_ranking():
    # precisions at the relevant ranks: 1/2, 2/4, 3/5 -> mean 0.5333; both normalisations divide by 3
    expected = (1 / 2 + 2 / 4 + 3 / 5) / 3
    assert average_precision_at_k(QUERY, RELEVANT, k=100) == pytest.approx(expected)
    assert average_precision_at_k(QUERY, RELEVANT, k=100, normalisation="standard") == pytest.approx(expected)


def test_ap_at_k_normalisations_differ_when_relevant_images_fall_outside_the_top_k():
    # top 3 = images 0, 1, 2: one relevant image, at rank 2 (precision 1/2)
    # reference: divide by relevant found in the top 3 (1) -> 0.5; standard: by min(3, 3 relevant) -> 1/6
    assert average_precision_at_k(QUERY, RELEVANT, k=3) == pytest.approx(0.5)
    assert average_precision_at_k(QUERY, RELEVANT, k=3, normalisation="standard") == pytest.approx(1 / 6)
    # top 2: same hit; standard divides by min(2, 3) = 2 -> 0.25
    assert average_precision_at_k(QUERY, RELEVANT, k=2, normalisation="standard") == pytest.approx(0.25)


def test_ap_edge_cases():
    # no relevant image in the top k: 0 both ways; none in the whole set: 0 (reference) / undefined (standard)
    assert average_precision_at_k(QUERY, RELEVANT, k=1) == 0.0
    assert average_precision_at_k(QUERY, RELEVANT, k=1, normalisation="standard") == 0.0
    nothing = np.zeros(5, dtype=bool)
    assert average_precision_at_k(QUERY, nothing) == 0.0
    assert math.isnan(average_precision_at_k(QUERY, nothing, normalisation="standard"))
    # ties keep image order: image 0 ranks before the relevant image 1 -> precision 1/2
    assert average_precision_at_k(np.array([0.5, 0.5, 0.1]), np.array([0, 1, 0], dtype=bool)) == 0.5
    with pytest.raises(ValueError, match="normalisation"):
        average_precision_at_k(QUERY, RELEVANT, normalisation="other")


def test_single_label_metrics_by_hand():
    scores = np.array(
        [
            [0.9, 0.1, 0.0, 0.0, 0.0, 0.0],
            [0.2, 0.7, 0.1, 0.0, 0.0, 0.0],
            [0.6, 0.3, 0.1, 0.0, 0.0, 0.0],
            [0.1, 0.2, 0.7, 0.0, 0.0, 0.0],
        ]
    )
    targets = np.array([0, 1, 1, 2])
    names = [f"c{i}" for i in range(6)]
    summary, per_class = single_label_metrics(scores, targets, names, k=100)
    # predictions 0, 1, 0, 2 -> 3 of 4 right
    assert summary["top1_accuracy"] == pytest.approx(0.75)
    # top 5 of image 2 is classes 0, 1, 2, 3, 4 (ties in order) -> contains 1; all four right
    assert summary["top5_accuracy"] == pytest.approx(1.0)
    # recall per class: c0 1/1, c1 1/2, c2 1/1; classes without images are left out -> (1 + .5 + 1) / 3
    assert summary["balanced_accuracy"] == pytest.approx(2.5 / 3)
    assert per_class["accuracy"].tolist()[:3] == [1.0, 0.5, 1.0]
    assert per_class["accuracy"][3:].isna().all()
    assert per_class["support"].tolist() == [1, 2, 1, 0, 0, 0]
    # class 1 ranks images 1 (0.7), 2 (0.3), 3 (0.2), 0 -> relevant at 1 and 2 -> AP 1; c0, c2: AP 1
    # c3..c5 have no image: AP 0 (reference), left out (standard)
    assert per_class["ap@100"].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert summary["map@100"] == pytest.approx(0.5)
    assert summary["map@100_standard"] == pytest.approx(1.0)


def test_top5_is_undefined_with_fewer_than_five_classes():
    assert math.isnan(top_k_accuracy(np.eye(3), np.arange(3), 5))


# Three images, three classes (hand-worked in the comments below).
ML_SCORES = np.array([[3.0, 1.0, 2.0], [0.0, 4.0, 1.0], [2.0, 2.0, 5.0]])
ML_TARGETS = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=bool)


def test_mean_of_others_rule_by_hand():
    # image 0: c0 3 > (1+2)/2; c1 1 < (3+2)/2; c2 2 is not > (3+1)/2 = 2 (strict)
    # image 1: only c1 4 > (0+1)/2; image 2: only c2 5 > (2+2)/2
    expected = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=bool)
    np.testing.assert_array_equal(mean_of_others_predictions(ML_SCORES), expected)


def test_multi_label_metrics_by_hand():
    summary, per_class = multi_label_metrics(ML_SCORES, ML_TARGETS, ["a", "b", "c"])
    # per-class agreement of predictions with labels: a 2/3, b 3/3, c 1/3 -> mean 2/3
    assert per_class["accuracy"].tolist() == pytest.approx([2 / 3, 1.0, 1 / 3])
    assert summary["accuracy"] == pytest.approx(2 / 3)
    # F1: a P=1 R=1/2 -> 2/3; b 1; c 0 -> macro 5/9; micro TP=2 FP=1 FN=2 -> P 2/3 R 1/2 -> 4/7
    assert per_class["f1"].tolist() == pytest.approx([2 / 3, 1.0, 0.0])
    assert summary["f1_macro"] == pytest.approx(5 / 9)
    assert summary["f1_micro"] == pytest.approx(4 / 7)
    # retrieval: a ranks 0, 2, 1 (both relevant on top) -> 1; b -> 1; c ranks 2, 0, 1, relevant 0 at 2 -> 1/2
    assert per_class["ap@100"].tolist() == pytest.approx([1.0, 1.0, 0.5])
    assert summary["map@100"] == pytest.approx(2.5 / 3)
    assert summary["map_macro"] == pytest.approx(2.5 / 3)
    # micro AP over the 9 flattened pairs (4 positive); thresholds 5: P 0; 4: P 1/2 R 1/4;
    # 3: P 2/3 R 1/2; 2 (tie of 2 positives, 1 negative): P 4/6 R 1 -> .25*.5 + .25*2/3 + .5*2/3 = 0.625
    assert summary["map_micro"] == pytest.approx(0.625)
