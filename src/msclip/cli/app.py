"""app: the web app (classify uploads, search an index, view scene maps, label and adapt) on a local port."""

from __future__ import annotations

import argparse
import re
import sys

from msclip.cli.common import add_model_options, load_model_from, positive_float, positive_int
from msclip.errors import MSClipError


def register(subparsers) -> None:
    p = subparsers.add_parser("app", help="start the web app: classify and search imagery in the browser")
    p.add_argument("--index", help="index folder (msclip index build) to search; without it only Classify")
    p.add_argument(
        "--examples", nargs="+", help="chips (files, folders, globs) offered as examples in the page"
    )
    p.add_argument("--head", help="few-shot head (msclip adapt) to classify with, instead of typed classes")
    p.add_argument(
        "--maps", help="folder of class maps (msclip map outputs: .tif + .parquet) for the Maps tab"
    )
    p.add_argument(
        "--basemap",
        help="tile URL template drawn under the bundled countries, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--max-upload-mb", type=positive_float, default=64.0, help="largest file accepted per upload"
    )
    p.add_argument("--max-files", type=positive_int, default=32, help="most images per request")
    add_model_options(p)
    p.set_defaults(run=run_app)


#: A slippy-map tile URL: http(s), a host, and the {z}, {x}, {y} placeholders (Leaflet fills {s} and {r} too).
TILE_URL = re.compile(r"^https?://[^/\s{}]+(?=\S*\{z\})(?=\S*\{x\})(?=\S*\{y\})\S*$")


def run_app(args: argparse.Namespace) -> int:
    if args.basemap and not TILE_URL.match(args.basemap):
        print(
            f"msclip: error: --basemap {args.basemap!r} is not a tile URL template with {{z}}, {{x}} and {{y}}, "
            "e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png",
            file=sys.stderr,
        )
        return 2
    maps = None
    if args.maps:
        from msclip.app.maps import find_maps

        try:
            maps = find_maps(args.maps)
        except MSClipError as exc:
            print(f"msclip: error: {exc}", file=sys.stderr)
            return 2
    try:
        import uvicorn

        from msclip.app import Limits, create_app
    except ImportError as exc:
        raise MSClipError(
            f"the web app needs its extra ({exc.name} is missing): pip install 'msclip[app]'"
        ) from None
    from msclip.io import iter_paths

    examples = iter_paths(args.examples) if args.examples else []
    index = None
    if args.index:
        from msclip.index import open_index

        index = open_index(args.index)
    head = None
    if args.head:
        from msclip.adapt import load_head

        head = load_head(args.head)
    model = load_model_from(args)
    limits = Limits(max_file_mb=args.max_upload_mb, max_files=args.max_files)
    app = create_app(model, index, examples, limits, head=head, maps=maps, basemap=args.basemap)
    print(f"msclip app: http://{args.host}:{args.port}  (model {model.spec.name}; Ctrl+C stops it)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
