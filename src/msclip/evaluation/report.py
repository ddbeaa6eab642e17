"""Outputs of a benchmark run: tidy tables (CSV, JSON), a Markdown summary, the settings and a radar chart.

Every file is written atomically; numbers are fractions in the tables and percent in the Markdown.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from msclip.evaluation.metrics import HEADLINE_ACCURACY, HEADLINE_MAP
from msclip.evaluation.runner import Evaluation
from msclip.io import atomic_write, write_table

RESULT_COLUMNS = ["model", "checkpoint", "dataset", "task", "metric", "value", "n_images", "n_skipped"]


def results_table(evaluations: list[Evaluation]) -> pd.DataFrame:
    """One row per (model, dataset, metric)."""
    rows = [
        {
            "model": e.model,
            "checkpoint": e.checkpoint,
            "dataset": e.dataset,
            "task": e.task,
            "metric": metric,
            "value": value,
            "n_images": e.n_images,
            "n_skipped": len(e.skipped),
        }
        for e in evaluations
        for metric, value in e.summary.items()
    ]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def per_class_table(evaluations: list[Evaluation]) -> pd.DataFrame:
    """One row per (model, dataset, class, metric), with the class's number of test images."""
    frames = []
    for e in evaluations:
        long = e.per_class.melt(id_vars=["class", "support"], var_name="metric", value_name="value")
        long.insert(0, "dataset", e.dataset)
        long.insert(0, "checkpoint", e.checkpoint)
        long.insert(0, "model", e.model)
        frames.append(long)
    columns = ["model", "checkpoint", "dataset", "class", "support", "metric", "value"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def headline_table(evaluations: list[Evaluation]) -> pd.DataFrame:
    """The paper's table: per model, accuracy and mAP@100 per dataset, then their averages (in %)."""
    rows: dict[str, dict[str, float]] = {}
    for e in evaluations:
        row = rows.setdefault(e.model, {})
        row[f"{e.dataset} acc"] = 100 * e.summary[HEADLINE_ACCURACY[e.task]]
        row[f"{e.dataset} mAP@100"] = 100 * e.summary[HEADLINE_MAP]
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    if not table.empty:
        # a model without every dataset gets no average: it would not be comparable
        table["average acc"] = table.filter(like=" acc").mean(axis=1, skipna=False)
        table["average mAP@100"] = table.filter(like=" mAP@100").mean(axis=1, skipna=False)
    return table


def markdown_summary(evaluations: list[Evaluation], missing: list[str], settings: dict) -> str:
    """Headline table, the standard metric variants, and what was skipped."""
    lines = ["# Zero-shot benchmark", ""]
    headline = headline_table(evaluations)
    if headline.empty:
        lines.append("No dataset could be evaluated.")
    else:
        lines += [
            "Accuracy (top-1; BigEarthNet: the reference's mean-of-others rule) and text-to-image retrieval",
            "mAP@100 (the reference's normalisation: relevant images found in the top 100), in %.",
            "",
            _markdown(headline.reset_index()),
            *_paper_row(headline, settings.get("reference_band_order", False)),
            "",
            "## Standard variants",
            "",
            "`map@100_standard` divides by min(100, relevant images in the test set); `map_macro`/`map_micro`",
            "are average precision over the full ranking; F1 uses the mean-of-others predictions.",
            "",
            _markdown(_variants(evaluations)),
        ]
    problems = [f"- {m}" for m in missing] + [
        f"- {e.model} / {e.dataset}: {len(e.skipped)} image(s) skipped" for e in evaluations if e.skipped
    ]
    if problems:
        lines += ["", "## Skipped", "", *problems]
    lines += ["", "## Settings", "", "```json", json.dumps(settings, indent=1), "```", ""]
    return "\n".join(lines)


#: Llama3-MS-CLIP's zero-shot numbers in the paper (arXiv 2503.15969): (accuracy, mAP@100) in %.
PAPER_LLAMA3_MS_CLIP = {
    "eurosat-ms": (67.9, 63.0),
    "bigearthnet-ms": (59.6, 35.6),
    "meterml-ms": (48.1, 29.7),
}


#: Why EuroSAT numbers differ from the paper's: the reference evaluation picks EuroSAT channels by position.
EUROSAT_BAND_ORDER_NOTE = (
    "EuroSAT: msclip selects bands by name (EuroSAT files store B8A last). The reference evaluation drops"
    " EuroSAT's B01, B09 and B10 by position as if the files were in the L1C order, so the paper's EuroSAT"
    " figures were most likely computed with B09, B12 and B8A in the model's B8A, B11 and B12 inputs;"
    " `--reference-band-order` reads the files that way to reproduce them."
)


def _paper_row(headline: pd.DataFrame, reference_band_order: bool = False) -> list[str]:
    """The paper's Llama3-MS-CLIP numbers for the datasets of this run, to compare at a glance, and how
    this run read EuroSAT compared with the paper."""
    columns = [c for c in headline.columns if c.split(" ", 1)[0] in PAPER_LLAMA3_MS_CLIP]
    if not columns:
        return []
    values = [PAPER_LLAMA3_MS_CLIP[c.split(" ", 1)[0]][0 if c.endswith(" acc") else 1] for c in columns]
    lines = [
        "",
        "Reported in the paper for Llama3-MS-CLIP-Base:",
        "",
        _markdown(pd.DataFrame([values], columns=columns)),
    ]
    if "eurosat-ms acc" in columns:
        used = (
            "This run used `--reference-band-order` (the reference's positional reading)."
            if reference_band_order
            else "This run selected EuroSAT bands by name."
        )
        lines += ["", f"{EUROSAT_BAND_ORDER_NOTE} {used}"]
    return lines


def _variants(evaluations: list[Evaluation]) -> pd.DataFrame:
    table = results_table(evaluations)
    table = table[~table["metric"].isin({"top1_accuracy", "accuracy", HEADLINE_MAP})]
    pivot = table.pivot_table(index=["model", "dataset"], columns="metric", values="value", sort=False)
    return (100 * pivot).reset_index()


def _markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table (no tabulate dependency), numbers with one decimal."""
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = (
        "|"
        + "|".join("---:" if pd.api.types.is_numeric_dtype(table[c]) else "---" for c in table.columns)
        + "|"
    )
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _fmt(value) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.1f}"
    return str(value)


def radar_chart(evaluations: list[Evaluation], path: Path) -> None:
    """The paper's radar: one axis per (dataset, metric), one polygon per model, 0-100 %."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    table = headline_table(evaluations).drop(columns=["average acc", "average mAP@100"], errors="ignore")
    if table.empty:
        return
    axes_names = list(table.columns)
    angles = np.linspace(0, 2 * np.pi, len(axes_names), endpoint=False).tolist()
    figure, ax = plt.subplots(figsize=(7, 7), subplot_kw={"polar": True})
    for model, row in table.iterrows():
        values = row.fillna(0).tolist()
        ax.plot([*angles, angles[0]], [*values, values[0]], linewidth=1.5, label=model)
        ax.fill([*angles, angles[0]], [*values, values[0]], alpha=0.1)
    ax.set_xticks(angles)
    ax.set_xticklabels([n.replace(" ", "\n", 1) for n in axes_names], fontsize=8)
    ax.set_ylim(0, 100)
    ax.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize=8)
    ax.set_title("Zero-shot accuracy and retrieval mAP@100 (%)")
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)


def write_outputs(
    evaluations: list[Evaluation], missing: list[str], settings: dict, folder: Path
) -> list[Path]:
    """Write every output into ``folder``; returns the paths written."""
    folder = Path(folder)
    results = results_table(evaluations)
    per_class = per_class_table(evaluations)
    written = []
    for name, table in (("results", results), ("per_class", per_class)):
        for suffix in (".csv", ".json"):
            write_table(table, folder / f"{name}{suffix}")
            written.append(folder / f"{name}{suffix}")
    settings_text = json.dumps(settings, indent=1)
    atomic_write(folder / "settings.json", lambda tmp: Path(tmp).write_text(settings_text, encoding="utf-8"))
    summary = markdown_summary(evaluations, missing, settings)
    atomic_write(folder / "summary.md", lambda tmp: Path(tmp).write_text(summary, encoding="utf-8"))
    written += [folder / "settings.json", folder / "summary.md"]
    if evaluations:
        radar_chart(evaluations, folder / "radar.png")
        written.append(folder / "radar.png")
    return written
