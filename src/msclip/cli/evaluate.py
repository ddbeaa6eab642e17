"""evaluate: the zero-shot benchmark of several models on several test sets."""

from __future__ import annotations

import argparse
import sys

from msclip.bands import LAYOUTS
from msclip.cli.common import add_input_bands_option, add_precision_option, non_negative_int, positive_int


def register(subparsers) -> None:
    from msclip.evaluation.datasets import DATASETS

    p = subparsers.add_parser(
        "evaluate",
        help="zero-shot benchmark: accuracy and retrieval mAP@100 of models on test sets",
        description="Datasets: "
        + "; ".join(f"{d.name} ({d.description})" for d in DATASETS.values())
        + ". NAME=FOLDER points a dataset elsewhere; an unknown NAME=FOLDER (or a folder) is a generic"
        " ImageFolder (one sub-folder per class).",
    )
    p.add_argument(
        "--datasets", nargs="+", required=True, help="dataset names, NAME=FOLDER, or class-folder paths"
    )
    p.add_argument("--data-dir", default=".", help="folder holding the datasets (default: current folder)")
    p.add_argument(
        "--models",
        nargs="+",
        default=["Llama3-MS-CLIP-Base"],
        help="model names, or NAME=CHECKPOINT for local weights",
    )
    p.add_argument(
        "--output", required=True, help="folder for results.csv/json, per_class, summary.md, radar.png"
    )
    p.add_argument("--templates", default="msclip", help="msclip, clip, rs5m, or a .txt/.yaml file")
    p.add_argument("--random-init", action="store_true", help="random weights (smoke tests, speed runs)")
    group = p.add_argument_group("few-shot curves (instead of the zero-shot benchmark)")
    group.add_argument("--shots", nargs="+", type=positive_int, help="shots per class, e.g. 1 2 4 8 16")
    group.add_argument(
        "--methods",
        nargs="+",
        default=["zero-shot", "linear-probe", "tip-adapter"],
        help="zero-shot, linear-probe, tip-adapter, tip-adapter-f, knn",
    )
    group.add_argument(
        "--seeds", type=positive_int, default=3, help="draws of the shots (mean and std over them)"
    )
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached class embeddings")
    p.add_argument(
        "--reference-band-order",
        action="store_true",
        help="read files as the paper's evaluation code does, to reproduce its numbers (EuroSAT: channels by"
        " position as if L1C, so B09, B12, B8A feed the model's B8A, B11, B12); default: bands by name",
    )
    group = p.add_argument_group("input (generic folders)")
    group.add_argument("--layout", choices=list(LAYOUTS), help="channel order of generic folders' files")
    add_input_bands_option(group, "band names of generic folders' files, in order")
    group.add_argument("--boa-offset", default="auto", choices=["auto", "0", "1000"])
    group.add_argument("--batch-size", type=positive_int, default=64)
    group.add_argument(
        "--workers",
        type=non_negative_int,
        help="DataLoader reader processes (default: a reader thread on < 8 cores, else by dataset size)",
    )
    group = p.add_argument_group("model")
    group.add_argument("--device", choices=["cpu", "cuda", "mps"], help="default: best available")
    add_precision_option(group)
    p.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    if args.shots:
        return run_few_shot_curves(args)
    from msclip.cli.common import input_options_from, show_table
    from msclip.evaluation import run_benchmark, write_outputs
    from msclip.evaluation.report import headline_table

    run = run_benchmark(
        args.models,
        args.datasets,
        args.data_dir,
        args.templates,
        random_init=args.random_init,
        device=args.device,
        precision=args.precision,
        options=input_options_from(args),
        use_cache=not args.no_cache,
        reference_band_order=args.reference_band_order,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=True,
    )
    for record in run.settings["models"]:
        print(f"msclip: {record['name']} ran in {record['precision']}", file=sys.stderr)
    if run.evaluations:
        write_outputs(run.evaluations, run.missing, run.settings, args.output)
        show_table(
            headline_table(run.evaluations).map("{:.1f}".format).reset_index(), "zero-shot benchmark (%)"
        )
        datasets = ", ".join(dict.fromkeys(e.dataset for e in run.evaluations))
        print(
            f"wrote results for {datasets} to {args.output} (tables, per-class metrics, summary.md, settings)"
        )
    for message in run.missing:
        print(f"msclip: skipped {message}", file=sys.stderr)
    unreadable = [reason for _, reason in dict.fromkeys(run.unreadable)]  # once, however many models tried
    skipped = [reason for e in run.evaluations for _, reason in e.skipped] + unreadable
    for reason in skipped:
        print(f"  {reason}", file=sys.stderr)
    if not run.evaluations and not run.unreadable:
        print("msclip: error: no dataset could be evaluated", file=sys.stderr)
        return 1
    return 3 if run.missing or skipped else 0


def run_few_shot_curves(args: argparse.Namespace) -> int:
    from msclip.adapt import METHODS
    from msclip.cli.common import input_options_from, show_table
    from msclip.errors import MSClipError
    from msclip.evaluation.fewshot import ZERO_SHOT, run_few_shot, write_few_shot_outputs

    unknown = [m for m in args.methods if m not in METHODS and m != ZERO_SHOT]
    if unknown:
        raise MSClipError(f"unknown method(s) {', '.join(unknown)}; use {ZERO_SHOT}, {', '.join(METHODS)}")
    shots = sorted(set(args.shots))
    runs, missing, sources = run_few_shot(
        args.models,
        args.datasets,
        args.data_dir,
        args.templates,
        shots,
        args.methods,
        args.seeds,
        random_init=args.random_init,
        device=args.device,
        precision=args.precision,
        options=input_options_from(args),
        use_cache=not args.no_cache,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=True,
    )
    for message in missing:
        print(f"msclip: skipped {message}", file=sys.stderr)
    if runs.empty:
        print("msclip: error: no dataset could be evaluated", file=sys.stderr)
        return 1
    settings = {
        "shots": shots,
        "methods": list(args.methods),
        "seeds": args.seeds,
        "templates": args.templates,
        "datasets": sources,
    }
    summary = write_few_shot_outputs(runs, args.output, settings)
    show_table(summary, "few-shot accuracy (mean, std over seeds)", max_rows=60)
    print(f"wrote few_shot.csv, few_shot_runs.csv, summary.md, settings.json and curves to {args.output}")
    return 3 if missing else 0
