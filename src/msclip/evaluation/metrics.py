"""Zero-shot benchmark metrics, defined exactly (and tested on hand-computed cases).

Scores are (images, classes) logits, e.g. 100 x cosine similarity. Rankings break ties by image order
(a stable sort), so the same scores always give the same numbers.

Retrieval, per class: rank every test image by that class's score, keep the top ``k`` (100), and average
the precision at the rank of each relevant image found there. Two normalisations:

* ``reference`` (the paper's numbers, torchmetrics ``RetrievalMAP(top_k=100)``): divide by the number of
  relevant images *found within the top k*; a class with no relevant image there scores 0. Checked equal
  to torchmetrics 1.9 on random positive scores; releases after Lightning-AI/torchmetrics#3104 (mid 2025,
  after the paper) also drop images scored <= 0, which this does not do. Ties: torchmetrics' order is
  unspecified, here it is the image order.
* ``standard`` (AP@k of the retrieval literature): divide by ``min(k, relevant images in the test set)``,
  so missing relevant images are penalised; a class without any relevant image is left out of the mean.

Multi-label decision rule of the reference: a class counts as predicted when its score beats the mean
score of the *other* classes of the same image.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

TOP_K_RETRIEVAL = 100


def ranking(scores: np.ndarray) -> np.ndarray:
    """Indices of ``scores`` (1-D) from best to worst; equal scores keep their original order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def average_precision_at_k(
    scores: np.ndarray, relevant: np.ndarray, k: int = TOP_K_RETRIEVAL, normalisation: str = "reference"
) -> float:
    """AP@k of one query: ``scores`` and boolean ``relevant`` over the whole test set (see module doc)."""
    relevant = np.asarray(relevant, dtype=bool)
    hits = relevant[ranking(scores)[:k]]
    ranks = np.flatnonzero(hits) + 1
    if normalisation == "reference":
        denominator = len(ranks)
    elif normalisation == "standard":
        denominator = min(k, int(relevant.sum()))
        if denominator == 0:
            return float("nan")
    else:
        raise ValueError(f"normalisation must be 'reference' or 'standard', not {normalisation!r}")
    if len(ranks) == 0:
        return 0.0
    precisions = np.arange(1, len(ranks) + 1) / ranks
    return float(precisions.sum() / denominator)


def retrieval_ap(scores: np.ndarray, relevance: np.ndarray, k: int = TOP_K_RETRIEVAL) -> pd.DataFrame:
    """Per class (columns of ``scores``): AP@k with both normalisations."""
    return pd.DataFrame(
        {
            f"ap@{k}": [
                average_precision_at_k(scores[:, c], relevance[:, c], k) for c in range(scores.shape[1])
            ],
            f"ap@{k}_standard": [
                average_precision_at_k(scores[:, c], relevance[:, c], k, "standard")
                for c in range(scores.shape[1])
            ],
        }
    )


def top_k_accuracy(scores: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Share of images whose true class is among the ``k`` best scores (NaN with fewer than k classes)."""
    if scores.shape[1] < k:
        return float("nan")
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((best == targets[:, None]).any(axis=1).mean())


def single_label_metrics(
    scores: np.ndarray, targets: np.ndarray, classes: list[str], k: int = TOP_K_RETRIEVAL
) -> tuple[dict[str, float], pd.DataFrame]:
    """Summary (top-1/top-5/balanced accuracy, mAP@k both ways) and a per-class table.

    Per-class accuracy is the recall of the class (correct / images of the class, NaN without images);
    balanced accuracy is their mean over the classes present (sklearn's definition).
    """
    from sklearn.metrics import balanced_accuracy_score

    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    predicted = scores.argmax(axis=1)
    support = np.bincount(targets, minlength=len(classes))
    correct = np.bincount(targets[predicted == targets], minlength=len(classes))
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, correct / support, np.nan)
    relevance = targets[:, None] == np.arange(len(classes))[None, :]
    per_class = retrieval_ap(scores, relevance, k)
    per_class.insert(0, "accuracy", recall)
    per_class.insert(0, "support", support)
    per_class.insert(0, "class", classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true" is expected
        balanced = float(balanced_accuracy_score(targets, predicted))
    summary = {
        "top1_accuracy": float((predicted == targets).mean()),
        "top5_accuracy": top_k_accuracy(scores, targets, 5),
        "balanced_accuracy": balanced,
        f"map@{k}": float(per_class[f"ap@{k}"].mean()),
        f"map@{k}_standard": float(np.nanmean(per_class[f"ap@{k}_standard"])),
    }
    return summary, per_class


def mean_of_others_predictions(scores: np.ndarray) -> np.ndarray:
    """The reference's multi-label rule: class c is predicted when its score beats the mean of the others."""
    scores = np.asarray(scores, dtype=np.float64)
    others = (scores.sum(axis=1, keepdims=True) - scores) / (scores.shape[1] - 1)
    return scores > others


def multi_label_metrics(
    scores: np.ndarray, targets: np.ndarray, classes: list[str], k: int = TOP_K_RETRIEVAL
) -> tuple[dict[str, float], pd.DataFrame]:
    """Summary and per-class table for multi-label sets (``targets`` is a 0/1 (images, classes) matrix).

    ``accuracy``: the reference's mean over classes of the share of images where the mean-of-others
    prediction equals the label. ``map_macro``/``map_micro``: sklearn average precision over the full
    ranking (macro over classes with a positive image). ``f1_macro``/``f1_micro``: sklearn F1 of the same
    mean-of-others predictions.
    """
    from sklearn.metrics import average_precision_score, f1_score

    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=bool)
    predicted = mean_of_others_predictions(scores)
    per_class = retrieval_ap(scores, targets, k)
    present = np.asarray(targets.any(axis=0))
    full_ap = [
        float(average_precision_score(targets[:, c], scores[:, c])) if present[c] else float("nan")
        for c in range(len(classes))
    ]
    per_class.insert(0, "ap", full_ap)
    per_class.insert(0, "f1", f1_score(targets, predicted, average=None, zero_division=0))
    per_class.insert(0, "accuracy", (predicted == targets).mean(axis=0))
    per_class.insert(0, "support", targets.sum(axis=0))
    per_class.insert(0, "class", classes)
    summary = {
        "accuracy": float(per_class["accuracy"].mean()),
        f"map@{k}": float(per_class[f"ap@{k}"].mean()),
        f"map@{k}_standard": float(np.nanmean(per_class[f"ap@{k}_standard"])),
        "map_macro": float(np.nanmean(full_ap)) if present.any() else float("nan"),
        "map_micro": float(average_precision_score(targets.ravel(), scores.ravel()))
        if present.any()
        else float("nan"),
        "f1_macro": float(f1_score(targets, predicted, average="macro", zero_division=0)),
        "f1_micro": float(f1_score(targets, predicted, average="micro", zero_division=0)),
    }
    return summary, per_class


#: The metric shown as "acc" in the paper's table, per task.
HEADLINE_ACCURACY = {"single": "top1_accuracy", "multi": "accuracy"}
HEADLINE_MAP = f"map@{TOP_K_RETRIEVAL}"
