"""adapt: fit a few-shot head on labelled images (class folders or an image/label table).

Nothing heavy is imported here: torch, the models and :mod:`msclip.adapt` load inside the run function.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from msclip.cli.common import add_input_options, add_model_options, positive_int, report_skipped, show_table
from msclip.errors import MSClipError

METHOD_HELP = (
    "linear-probe (default: logistic regression blended with the text classifier, LP++), "
    "tip-adapter (training-free cache), tip-adapter-f (fine-tuned cache), knn (cosine k nearest)"
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "adapt", help="fit a few-shot classifier head on labelled images (use it with classify/map --head)"
    )
    add_input_options(p)
    for action in p._actions:  # the shared input options, with TRAIN as the one positional
        if action.dest == "inputs":
            action.metavar, action.nargs = "TRAIN", None
            action.help = "folder with one sub-folder of images per class, or a table (image, label[, split])"
    p.add_argument("--method", help=METHOD_HELP)
    p.add_argument("--output", required=True, help="head file to write (.safetensors)")
    p.add_argument(
        "--templates", default="msclip", help="text classifier templates: msclip, clip, rs5m or a file"
    )
    p.add_argument("--no-text-init", action="store_true", help="linear-probe: plain logistic regression")
    p.add_argument(
        "--k", type=positive_int, help="knn: neighbours (default: the smallest class size, at most 5)"
    )
    p.add_argument("--seed", type=int, default=0, help="tip-adapter-f: seed of the batch order")
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached embeddings")
    add_model_options(p)
    p.set_defaults(run=run_adapt)


def method_options(args: argparse.Namespace, method: str) -> dict:
    """The command-line options that concern ``method``."""
    if method == "linear-probe":
        return {"text_init": not args.no_text_init}
    if method == "knn":
        return {"k": args.k} if args.k else {}
    if method == "tip-adapter-f":
        return {"seed": args.seed}
    return {}


def run_adapt(args: argparse.Namespace) -> int:
    from msclip.adapt import DEFAULT_METHOD, METHODS, adapt, read_examples, save_head
    from msclip.cli.common import input_options_from, load_model_from
    from msclip.text import templates

    method = args.method or DEFAULT_METHOD
    if method not in METHODS:
        raise MSClipError(f"unknown method {method!r}; use {', '.join(METHODS)}")
    if Path(args.output).suffix.lower() != ".safetensors":
        raise MSClipError(f"a head is a .safetensors file, not {args.output}")
    examples = read_examples(args.inputs)
    template_list = templates(args.templates)
    model = load_model_from(args)
    skipped: list[tuple[str, str]] = []
    head = adapt(
        model,
        examples,
        method,
        template_list,
        use_cache=not args.no_cache,
        skipped=skipped,
        method_options=method_options(args, method),
        options=input_options_from(args),
        batch_size=args.batch_size,
        workers=args.workers,
        progress=True,
    )
    save_head(head, args.output)
    _show(head)
    print(f"wrote a {method} head for {model.spec.name} ({len(head.class_names)} classes) to {args.output}")
    return report_skipped(skipped)


def _show(head) -> None:
    import pandas as pd

    rows = [{"class": name, "shots": head.shots.get(name, 0)} for name in head.class_names]
    show_table(pd.DataFrame(rows), f"{head.method} head", max_rows=50)
