"""classify, retrieve, embed, models, convert."""

from __future__ import annotations

import argparse
from pathlib import Path

from msclip.cli.common import (
    add_input_options,
    add_model_options,
    input_options_from,
    load_model_from,
    positive_int,
    report_skipped,
    show_table,
    stream_options_from,
)
from msclip.cli.scenes import add_window_options
from msclip.errors import MSClipError


def register(subparsers) -> None:
    p = subparsers.add_parser("classify", help="zero-shot classification of images")
    add_input_options(p)
    p.add_argument("--classes", nargs="+", help="class names, or one .txt/.yaml file (not with --head)")
    p.add_argument("--templates", default="msclip", help="msclip, clip, rs5m, or a .txt/.yaml file")
    p.add_argument("--head", help="few-shot head from msclip adapt (.safetensors), instead of --classes")
    p.add_argument(
        "--transductive",
        action="store_true",
        help="refine over all inputs together (TransCLIP, training-free)",
    )
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached class embeddings")
    p.add_argument("--output", help=".csv, .parquet or .json")
    add_model_options(p)
    p.set_defaults(run=run_classify)

    p = subparsers.add_parser("retrieve", help="rank images by similarity to text queries")
    add_input_options(p)
    p.add_argument("--query", nargs="+", required=True, help="text queries, or one .txt/.yaml file")
    p.add_argument("--top-k", type=positive_int, default=10)
    p.add_argument("--output", help=".csv, .parquet or .json")
    add_model_options(p)
    p.set_defaults(run=run_retrieve)

    p = subparsers.add_parser("embed", help="L2-normalised embeddings of chips or scene windows")
    add_input_options(p)
    p.add_argument("--output", required=True, help=".parquet, .csv or .json; for scenes .parquet or a folder")
    add_model_options(p)
    add_window_options(p)
    p.set_defaults(run=run_embed)

    p = subparsers.add_parser("models", help="list the registered models")
    p.set_defaults(run=run_models)

    p = subparsers.add_parser("convert", help="convert a checkpoint (e.g. the official .pt) to safetensors")
    p.add_argument("checkpoint", help="source checkpoint")
    p.add_argument("output", help="target .safetensors file")
    p.set_defaults(run=run_convert)


def _check_inputs(args: argparse.Namespace) -> None:
    """Cheap checks first, so a typo fails in a second rather than after loading a model."""
    from msclip.io import check_table_path, iter_paths

    iter_paths(args.inputs)
    check_table_path(args.output)
    input_options_from(args)  # checks --layout, --input-bands and --boa-offset


def run_classify(args: argparse.Namespace) -> int:
    from msclip.text import class_names, templates
    from msclip.zeroshot import classify

    _check_inputs(args)
    if bool(args.classes) == bool(args.head):
        raise MSClipError("give either --classes (zero-shot) or --head (from msclip adapt)")
    if args.head:
        from msclip.adapt import load_head

        head, names, prompts = load_head(args.head), None, args.templates
    else:
        head, names, prompts = None, class_names(args.classes), templates(args.templates)
    model = load_model_from(args)
    result = classify(
        model,
        args.inputs,
        names,
        prompts,
        use_cache=not args.no_cache,
        head=head,
        transductive=args.transductive,
        **stream_options_from(args),
    )
    title = f"{head.method} head" if head else "zero-shot classification"
    if args.transductive:
        title += ", transductive"
    return _finish(result, args.output, title, short_paths=True)


def run_retrieve(args: argparse.Namespace) -> int:
    from msclip.text import class_names
    from msclip.zeroshot import retrieve

    _check_inputs(args)
    queries = class_names(args.query)
    model = load_model_from(args)
    result = retrieve(model, args.inputs, queries, args.top_k, **stream_options_from(args))
    return _finish(result, args.output, "retrieval", short_paths=True)


def run_embed(args: argparse.Namespace) -> int:
    from msclip.cli.scenes import run_scene_embed, scene_inputs
    from msclip.zeroshot import embed

    scenes = scene_inputs(args)
    if scenes:
        return run_scene_embed(args, scenes)

    _check_inputs(args)
    model = load_model_from(args)
    result = embed(model, args.inputs, **stream_options_from(args))
    return _finish(result, args.output, "embeddings", columns=["image", "crs", "filled_fraction"])


def _finish(result, output: str | None, title: str, short_paths: bool = False, columns=None) -> int:
    from msclip.io import write_table

    if output:
        write_table(result.table, output)
    view = result.table[columns] if columns else result.table.copy()
    if short_paths and "image" in view:
        view["image"] = view["image"].map(lambda p: Path(p).name)
    show_table(view, title)
    if output:
        print(f"wrote {len(result.table)} rows to {output}")
    return report_skipped(result.skipped)


def run_models(args: argparse.Namespace) -> int:
    import pandas as pd

    from msclip.models import list_models

    rows = [
        {
            "name": s.name,
            "architecture": s.arch,
            "bands": " ".join(s.bands),
            "weights": s.weight_source,
            "licence": s.licence,
        }
        for s in list_models()
    ]
    show_table(pd.DataFrame(rows), "registered models (any open_clip architecture works too)")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from msclip.models.checkpoint import convert_to_safetensors

    count = convert_to_safetensors(args.checkpoint, args.output)
    print(f"wrote {count} tensors to {args.output}")
    return 0
