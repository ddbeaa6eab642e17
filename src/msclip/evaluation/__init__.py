"""Zero-shot benchmark: the paper's test sets in their published layouts, exactly defined metrics,
tidy tables, a Markdown summary and a radar chart (``msclip evaluate``).

Names are imported on first use, so the command line can list the datasets without loading torch.
"""

from msclip._lazy import lazy_exports

_EXPORTS = {
    "DATASETS": "msclip.evaluation.datasets",
    "BenchmarkRun": "msclip.evaluation.benchmark",
    "EvalSet": "msclip.evaluation.datasets",
    "Evaluation": "msclip.evaluation.runner",
    "Sample": "msclip.evaluation.datasets",
    "average_precision_at_k": "msclip.evaluation.metrics",
    "evaluate_dataset": "msclip.evaluation.runner",
    "mean_of_others_predictions": "msclip.evaluation.metrics",
    "multi_label_metrics": "msclip.evaluation.metrics",
    "resolve": "msclip.evaluation.datasets",
    "run_benchmark": "msclip.evaluation.benchmark",
    "single_label_metrics": "msclip.evaluation.metrics",
    "write_outputs": "msclip.evaluation.report",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
