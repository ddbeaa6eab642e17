"""map, index build/add/search, and the scene branch of embed."""

from __future__ import annotations

import argparse
from pathlib import Path

from msclip.cli.common import (
    LonLatBox,
    add_input_options,
    add_model_options,
    announce,
    fraction,
    input_options_from,
    load_model_from,
    model_args_from,
    positive_int,
    report_skipped,
    show_table,
)
from msclip.errors import MSClipError, SkippedImage

#: Output types of search hits, by extension.
HIT_SUFFIXES = (".geojson", ".parquet", ".csv", ".json")


def register(subparsers) -> None:
    p = subparsers.add_parser("map", help="zero-shot class map of a whole scene (COG + window footprints)")
    add_input_options(p)
    p.add_argument("--classes", nargs="+", help="class names, or one .txt/.yaml file (not with --head)")
    p.add_argument("--templates", default="msclip", help="msclip, clip, rs5m, or a .txt/.yaml file")
    p.add_argument("--head", help="few-shot head from msclip adapt (.safetensors), instead of --classes")
    p.add_argument("--transductive", action="store_true", help="refine over all windows together (TransCLIP)")
    p.add_argument(
        "--output", required=True, help="map GeoTIFF (COG): one probability band per class + argmax"
    )
    p.add_argument("--footprints", help="GeoParquet of windows with scores (default: beside --output)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached class embeddings")
    add_window_options(p, engines=False)  # one scene is mapped here
    add_model_options(p)
    p.set_defaults(run=run_map)

    index = subparsers.add_parser("index", help="build, grow and search an embedding index").add_subparsers(
        dest="index_command", required=True, metavar="ACTION"
    )
    p = index.add_parser("build", help="index embedding files (from msclip embed)")
    p.add_argument("files", nargs="+", help="embedding .parquet files or folders of them")
    p.add_argument("--output", required=True, help="index folder")
    p.add_argument(
        "--kind", choices=["auto", "flat", "ivf", "hnsw"], default="auto", help="auto: exact when small"
    )
    p.set_defaults(run=run_index_build)

    p = index.add_parser("add", help="add embedding files to an index without rebuilding it")
    p.add_argument("index", help="index folder")
    p.add_argument("files", nargs="+", help="embedding .parquet files or folders of them")
    p.set_defaults(run=run_index_add)

    p = index.add_parser("search", help="text-to-image (--query) or image-to-image (--like) search")
    p.add_argument("index", help="index folder")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--query", nargs="+", help="text queries, or one .txt/.yaml file")
    what.add_argument("--like", nargs="+", help="images (chips) to find similar ones to")
    p.add_argument("--top-k", type=positive_int, default=10)
    p.add_argument(
        "--bbox", nargs=4, type=float, action=LonLatBox, metavar=("MINLON", "MINLAT", "MAXLON", "MAXLAT")
    )
    p.add_argument("--start", help="first date (YYYY-MM-DD or ISO time, inclusive)")
    p.add_argument("--end", help="last date (inclusive)")
    p.add_argument("--output", help="hits as .geojson or .parquet (open in QGIS), .csv or .json")
    add_model_options(p)
    p.set_defaults(run=run_index_search, model=None)  # default: the model the index was made with


def add_window_options(parser: argparse.ArgumentParser, engines: bool = True) -> None:
    """Sliding-window options of scene inputs (also on ``msclip embed``), and with ``engines`` where many
    scenes are embedded."""
    group = parser.add_argument_group(
        "scenes (inputs larger than the model's chip, .SAFE folders, STAC items)"
    )
    group.add_argument(
        "--stride", type=positive_int, help="pixels between windows (default: the chip size, no overlap)"
    )
    group.add_argument(
        "--min-valid", type=fraction, default=0.5, help="skip windows with less valid data than this"
    )
    group.add_argument(
        "--max-cloud", type=fraction, default=0.5, help="skip windows cloudier than this (SCL band)"
    )
    if not engines:
        return
    group.add_argument(
        "--engine",
        choices=["local", "dask"],
        help="where scenes are embedded (default: local, dask with --cluster)",
    )
    group.add_argument("--cluster", help="Dask scheduler address (tcp://host:8786); implies --engine dask")


def scene_engine(args: argparse.Namespace) -> str:
    """--engine, or dask when a --cluster is given; a cluster with the local engine is a contradiction."""
    if args.cluster and args.engine == "local":
        raise MSClipError(
            "--cluster sends scenes to a Dask scheduler: drop --engine local (or use --engine dask)"
        )
    return args.engine or ("dask" if args.cluster else "local")


def scene_inputs(args: argparse.Namespace) -> list[str] | None:
    """The inputs as scenes, None when they are chips; mixing both is a user error."""
    from msclip.io import iter_paths
    from msclip.models.model import resolve_spec
    from msclip.scenes.source import input_kind

    size = resolve_spec(args.model, args.checkpoint).image_size
    found: dict[str, list[str]] = {"scene": [], "chip": [], "unreadable": []}
    for item in args.inputs:
        if input_kind(item, size) == "scene":
            found["scene"].append(item)
            continue
        for path in iter_paths([item]):
            found[input_kind(path, size)].append(path)
    scenes, chips = found["scene"], found["chip"]
    if scenes and chips:
        raise MSClipError(f"give scenes and chips in separate calls (scenes: {scenes[0]}, chips: {chips[0]})")
    # unreadable files go with the rest, whose reader names and skips them
    return scenes + found["unreadable"] if scenes else None


def run_scene_embed(args: argparse.Namespace, scenes: list[str]) -> int:
    """``msclip embed SCENE... --output scene.parquet | folder/``: window footprints + embeddings per scene."""
    from msclip.scenes.engine import embed_scenes, scene_outputs

    single = args.output.lower().endswith(".parquet")
    if not single and Path(args.output).suffix:
        raise MSClipError(f"scene embeddings go to a .parquet file or a folder, not {args.output}")
    if single and len(scenes) > 1:
        raise MSClipError(f"{len(scenes)} scenes: give a folder as --output (one GeoParquet per scene)")
    outputs = [args.output] if single else scene_outputs(scenes, args.output)
    engine = scene_engine(args)
    report = embed_scenes(
        scenes, outputs, model_args_from(args), _scene_job(args), engine, args.cluster, resume=not single
    )
    for output in report.written:
        print(f"wrote {output}")
    if report.existing:
        print(f"{len(report.existing)} scene(s) already done in {args.output} (not redone)")
    return report_skipped(report.skipped)


def run_map(args: argparse.Namespace) -> int:
    from msclip.scenes import map_scene, open_scene, write_geoparquet, write_map
    from msclip.text import class_names

    if len(args.inputs) != 1:
        raise MSClipError("msclip map takes one scene")
    if not args.output.lower().endswith((".tif", ".tiff")):
        raise MSClipError(f"the map is a GeoTIFF: give --output a .tif name, not {args.output}")
    if bool(args.classes) == bool(args.head):
        raise MSClipError("give either --classes (zero-shot) or --head (from msclip adapt)")
    head = None
    if args.head:
        from msclip.adapt import load_head

        head = load_head(args.head)
    options = input_options_from(args)
    names = class_names(args.classes) if args.classes else None
    try:
        scene = open_scene(args.inputs[0], options.layout, list(options.bands) if options.bands else None)
    except SkippedImage as exc:  # the one input is unusable: nothing to write, reported as a skip
        return report_skipped([(args.inputs[0], str(exc))])
    model = load_model_from(args)
    job = _scene_job(args)
    result = map_scene(
        model,
        scene,
        names,
        args.templates,
        use_cache=not args.no_cache,
        head=head,
        transductive=args.transductive,
        options=options,
        windows=job.windows,
        batch_size=job.batch_size,
        workers=job.workers,
        progress=True,
    )
    footprints = args.footprints or str(Path(args.output).with_suffix(".parquet"))
    write_map(result, args.output)
    write_geoparquet(result.windows, footprints, model)
    counts = result.windows["status"].value_counts().rename_axis("status").reset_index(name="windows")
    show_table(counts, f"{scene.name}: {len(result.windows)} windows")
    print(f"wrote {args.output} and {footprints}")
    return report_skipped(failed_windows(scene.name, result.windows["status"]))


def failed_windows(scene: str, status) -> list[tuple[str, str]]:
    """Windows that could not be read (not nodata or cloud, which are choices), as one named skip."""
    failed = status[~status.isin(["ok", "nodata", "cloud"])]
    if failed.empty:
        return []
    return [(scene, f"{scene}: {len(failed)} of {len(status)} windows could not be read ({failed.iloc[0]})")]


def run_index_build(args: argparse.Namespace) -> int:
    from msclip.index import build_index, open_index

    build_index(args.files, args.output, args.kind)
    index = open_index(args.output)
    print(f"indexed {len(index)} vectors ({index.kind}, {index.dim} dimensions) in {args.output}")
    return 0


def run_index_add(args: argparse.Namespace) -> int:
    from msclip.index import add_to_index
    from msclip.index.store import read_manifest

    before = read_manifest(args.index)["count"]
    rebuilt = add_to_index(args.index, args.files)
    after = read_manifest(args.index)
    print(f"added {after['count'] - before} vectors to {args.index}")
    if rebuilt:
        print(
            f"the index outgrew its kind and was retrained as {after['kind']} on all {after['count']} vectors"
        )
    return 0


def run_index_search(args: argparse.Namespace) -> int:
    from msclip.index import open_index
    from msclip.models import load_model

    index = open_index(args.index)
    if args.output and not args.output.lower().endswith(HIT_SUFFIXES):
        raise MSClipError(f"unsupported output type for {args.output}; use {', '.join(HIT_SUFFIXES)}")
    if args.model and index.model_name and args.model != index.model_name:  # as `index add` and the app do
        raise MSClipError(
            f"{args.index} holds {index.model_name} embeddings; {args.model} would score unrelated vectors:"
            f" leave --model out or pass --model {index.model_name}"
        )
    name = args.model or index.model_name or "Llama3-MS-CLIP-Base"
    model = load_model(name, args.checkpoint, device=args.device, precision=args.precision, backend=args.backend,
                       revision=args.revision, sha256=args.sha256)  # fmt: skip
    announce(model, args.precision)
    labels, queries, skipped = _queries(args, model)
    index.check_queries(queries, model.spec.name)
    hits = index.search(queries, args.top_k, tuple(args.bbox) if args.bbox else None, args.start, args.end)
    hits.insert(1, "query", [labels[q] for q in hits["query_id"]])
    if args.output:
        write_hits(hits, args.output)
    view = hits[["query", "rank", "score", "image", "datetime"]].copy()
    view["image"] = view["image"].map(lambda p: Path(p).name)
    show_table(view, f"search in {args.index} ({len(index)} vectors)")
    if args.output:
        print(f"wrote {len(hits)} hits to {args.output}")
    return report_skipped(skipped)


def _queries(args: argparse.Namespace, model):
    """(labels, unit vectors, skipped) from text queries or example images."""
    import numpy as np

    from msclip.text import class_names
    from msclip.zeroshot import embed

    if args.query:
        labels = class_names(args.query)
        return labels, model.encode_text(labels).numpy(), []
    result = embed(model, args.like)
    if result.table.empty:
        raise MSClipError("none of the --like images could be used")
    return result.table["image"].tolist(), np.stack(result.table["embedding"].to_list()), result.skipped


def write_hits(hits, path: str) -> None:
    """GeoJSON or GeoParquet (EPSG:4326, open in QGIS), or CSV/JSON with the footprint as WKT."""
    from msclip.io import atomic_write, write_table

    hits = hits.copy()
    hits["datetime"] = [None if t is None else t.isoformat() for t in hits["datetime"]]
    suffix = Path(path).suffix.lower()
    if suffix == ".geojson":
        # feature ids of their own: the `id` column repeats across queries, and GDAL readers (QGIS) would
        # otherwise take it as the feature id and warn about duplicates
        atomic_write(path, lambda tmp: hits.to_file(tmp, driver="GeoJSON", ID_GENERATE="YES"))
    elif suffix == ".parquet":
        atomic_write(path, lambda tmp: hits.to_parquet(tmp, index=False))
    else:
        write_table(hits.to_wkt(), path)


def _scene_job(args: argparse.Namespace):
    from msclip.runtime import reader_processes
    from msclip.scenes.embed import WindowOptions
    from msclip.scenes.engine import SceneJob

    windows = WindowOptions(args.stride, args.min_valid, args.max_cloud)
    on_cluster = getattr(args, "engine", None) == "dask" or getattr(args, "cluster", None)
    # Dask workers cannot start DataLoader processes (the cluster gives the parallelism there); elsewhere
    # reader processes pay off only with cores to spare (2 cores: 187 windows/s without workers, 126 with 2)
    if args.workers is not None:
        workers = args.workers
    elif on_cluster:
        workers = 0
    else:
        workers = reader_processes()
    return SceneJob(input_options_from(args), windows, args.batch_size, workers)
