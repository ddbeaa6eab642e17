"""Zero-shot benchmark: the paper's test sets in their published layouts, exactly defined metrics,
tidy tables, a Markdown summary and a radar chart (``msclip evaluate``)."""

from msclip.evaluation.benchmark import BenchmarkRun, run_benchmark
from msclip.evaluation.datasets import DATASETS, EvalSet, Sample, resolve
from msclip.evaluation.metrics import (
    average_precision_at_k,
    mean_of_others_predictions,
    multi_label_metrics,
    single_label_metrics,
)
from msclip.evaluation.report import write_outputs
from msclip.evaluation.runner import Evaluation, evaluate_dataset

__all__ = [
    "DATASETS",
    "BenchmarkRun",
    "EvalSet",
    "Evaluation",
    "Sample",
    "average_precision_at_k",
    "evaluate_dataset",
    "mean_of_others_predictions",
    "multi_label_metrics",
    "resolve",
    "run_benchmark",
    "single_label_metrics",
    "write_outputs",
]
