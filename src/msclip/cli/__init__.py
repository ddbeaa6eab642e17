"""The ``msclip`` command: argument parsing, progress, tables and exit codes; the work is in the API.

Exit codes: 0 done; 1 a user error (one line on stderr); 2 bad arguments; 3 done, but inputs were skipped.

Fast answers: ``msclip --help``, ``msclip CMD --help`` and argument errors build the whole parser, so a
command module (listed in ``COMMAND_MODULES``) imports only the standard library and light msclip modules
(``msclip.bands``, ``msclip.errors``, ``msclip.cli.common``) at its top and in ``register()``; torch,
open_clip, rasterio, pandas and the modules that load them (``msclip.models``, ``msclip.zeroshot``,
``msclip.data``, ...) are imported inside its ``run_*`` functions. ``tests/test_cli_startup.py`` checks it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from msclip.errors import MSClipError

#: Modules that add subcommands; each has ``register(subparsers)``.
COMMAND_MODULES = (
    "msclip.cli.core",
    "msclip.cli.app",
    "msclip.cli.evaluate",
    "msclip.cli.caption",
    "msclip.cli.train",
    "msclip.cli.scenes",
    "msclip.cli.adapt",
)

#: The extra each command needs beyond the core install (embed needs [scenes] only for whole scenes).
COMMAND_EXTRAS = {
    "app": "app",
    "evaluate": "evaluate",
    "caption": "caption",
    "caption-report": "caption",
    "train": "train",
    "map": "scenes",
    "index": "scenes",
    "embed": "scenes",
}


def build_parser() -> argparse.ArgumentParser:
    from msclip import __version__

    parser = argparse.ArgumentParser(
        prog="msclip", description="Vision-language models for multispectral Sentinel-2 imagery."
    )
    parser.add_argument("--version", action="version", version=f"msclip {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs and full tracebacks")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from msclip.cli.common import check_outputs

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.ERROR, format="%(levelname)s %(message)s"
    )
    try:
        check_outputs(args)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.run(args) or 0)
    except MSClipError as exc:
        if args.verbose:
            raise
        print(f"msclip: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        extra = COMMAND_EXTRAS.get(args.command)
        if extra is None or args.verbose:
            raise
        print(
            f"msclip: error: {args.command} needs the [{extra}] extra ({exc.name} is not installed): "
            f"pip install 'msclip[{extra}]'",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("msclip: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # unforeseen (a library's error, a bug): one line; -v shows the traceback
        if args.verbose:
            raise
        first_line = (str(exc).strip().splitlines() or [""])[0]
        print(f"msclip: error: {type(exc).__name__}: {first_line} (-v shows details)", file=sys.stderr)
        return 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line on stderr, like an error (its place in msclip's code tells a user nothing)."""
    print(f"msclip: warning: {message}", file=sys.stderr)


def entry() -> None:
    sys.exit(main())


if os.environ.get("MSCLIP_CLI_DEBUG"):  # pragma: no cover - developer switch
    logging.getLogger().setLevel(logging.DEBUG)
