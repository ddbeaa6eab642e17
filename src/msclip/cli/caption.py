"""msclip caption: Overture Maps tags + a vision-language model -> captions for chips."""

from __future__ import annotations

import argparse
import os

from msclip.bands import LAYOUTS
from msclip.cli.common import (
    LonLatBox,
    add_input_bands_option,
    fraction,
    non_negative_int,
    positive_float,
    positive_int,
    report_skipped,
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "caption",
        help="caption chips with Overture Maps tags and a vision-language model (resumable, sharded)",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        help="GeoTIFF chips (files, folders, globs, .txt/.yaml lists) or SSL4EO-S12 Zarr files",
    )
    p.add_argument("--output", required=True, help="folder of Parquet parts (re-running resumes it)")
    p.add_argument("--layout", choices=list(LAYOUTS), help="channel order of the files (default: by count)")
    add_input_bands_option(p, "band names of the files' channels, in order (beats --layout)")
    tags = p.add_argument_group("Overture Maps")
    source = tags.add_mutually_exclusive_group(required=True)
    source.add_argument("--overture", nargs="+", help="local GeoParquet extract: files or folders")
    source.add_argument(
        "--overture-release",
        metavar="RELEASE",
        help="read the public S3 release, e.g. 2024-03-12-alpha.0 (online)",
    )
    tags.add_argument(
        "--bbox",
        nargs=4,
        type=float,
        action=LonLatBox,
        metavar=("W", "S", "E", "N"),
        help="lon/lat area to load",
    )
    tags.add_argument("--types", nargs="+", help="feature types to use (default: all of them)")
    vlm = p.add_argument_group("vision-language model")
    vlm.add_argument("--vlm", help="Hugging Face model id or folder (default: Llama3-LLaVA-NeXT-8B)")
    vlm.add_argument(
        "--server", help="OpenAI-compatible base URL (e.g. http://host:8000/v1) instead of transformers"
    )
    vlm.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key"
    )
    vlm.add_argument("--tags-only", action="store_true", help="write the Overture tags, no captions")
    vlm.add_argument("--prompts", default="v1", help="prompt version (v1) or a .yaml file")
    vlm.add_argument("--max-new-tokens", type=positive_int, default=300)
    vlm.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    vlm.add_argument("--top-p", type=fraction, default=1.0)
    vlm.add_argument("--device", help="transformers device (default: cuda when available)")
    vlm.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    vlm.add_argument("--concurrency", type=positive_int, default=8, help="HTTP requests in flight")
    vlm.add_argument("--retries", type=non_negative_int, default=3, help="HTTP retries per request")
    vlm.add_argument(
        "--timeout", type=positive_float, default=120.0, help="HTTP time-out per request, seconds"
    )
    run = p.add_argument_group("run")
    run.add_argument("--shard", default="0/1", help="i/n: caption this machine's share of the chips")
    run.add_argument("--batch-size", type=positive_int, default=8)
    run.add_argument(
        "--flush-every", type=positive_int, default=64, help="chips per Parquet part (what a kill can lose)"
    )
    run.add_argument(
        "--workers", type=non_negative_int, default=4, help="threads reading chips ahead of the model"
    )
    run.add_argument(
        "--view-size", type=positive_int, default=672, help="pixels of the RGB view shown to the model"
    )
    p.set_defaults(run=run_caption)

    p = subparsers.add_parser("caption-report", help="quality summary over every shard of a caption folder")
    p.add_argument("output", help="the --output folder of msclip caption")
    p.set_defaults(run=run_report)


def run_caption(args: argparse.Namespace) -> int:
    from msclip.captioning.chips import chip_sources
    from msclip.captioning.pipeline import caption, check_output_kind, parse_shard
    from msclip.captioning.prompts import prompt_set

    shard = parse_shard(args.shard)
    check_output_kind(args.output, captions=not args.tags_only)  # before the VLM loads
    prompts = prompt_set(args.prompts)
    sources = chip_sources(args.inputs, args.layout, args.input_bands, args.view_size)
    index = _overture_index(args)
    backend = None if args.tags_only else _backend(args)
    result = caption(
        sources,
        index,
        backend,
        args.output,
        prompts,
        # an HTTP batch is what is in flight at once, so it is never smaller than the concurrency
        batch_size=max(args.batch_size, args.concurrency) if args.server else args.batch_size,
        flush_every=args.flush_every,
        shard=shard,
        workers=args.workers,
    )
    for key, value in result.summary.items():
        print(f"{key}: {value}")
    return report_skipped(result.skipped)


def run_report(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from msclip.captioning.pipeline import read_captions
    from msclip.captioning.quality import summary
    from msclip.errors import MSClipError
    from msclip.io import atomic_write

    table = read_captions(args.output)
    if table.empty:
        raise MSClipError(f"no caption parts (part-*.parquet) in {args.output}")
    report = summary(table)
    text = json.dumps(report, indent=1)
    atomic_write(
        Path(args.output) / "_summary.json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8")
    )
    print(text)
    return 0


def _overture_index(args: argparse.Namespace):
    from msclip.captioning.overture import THEMES, OvertureIndex
    from msclip.errors import MSClipError

    bbox = tuple(args.bbox) if args.bbox else None
    if args.overture:
        return OvertureIndex.from_parquet(args.overture, args.types, bbox)
    if bbox is None:
        raise MSClipError("--overture-release needs --bbox W S E N (the area of your chips, lon/lat)")
    return OvertureIndex.from_release(bbox, args.overture_release, args.types or tuple(THEMES))


def _backend(args: argparse.Namespace):
    from msclip.captioning.backends import DEFAULT_VLM, GenerationSettings, OpenAIBackend, TransformersBackend

    settings = GenerationSettings(args.max_new_tokens, args.temperature, args.top_p)
    if args.server:
        return OpenAIBackend(
            args.server,
            args.vlm or DEFAULT_VLM,
            os.environ.get(args.api_key_env),
            concurrency=args.concurrency,
            retries=args.retries,
            timeout=args.timeout,
            settings=settings,
        )
    return TransformersBackend.from_pretrained(
        args.vlm or DEFAULT_VLM, args.device, args.dtype, settings=settings
    )
