"""The ``msclip`` command: argument parsing, progress, tables and exit codes; the work is in the API.

Exit codes: 0 done; 1 a user error (one line on stderr); 2 bad arguments; 3 done, but inputs were skipped.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

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
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.ERROR, format="%(levelname)s %(message)s"
    )
    try:
        return int(args.run(args) or 0)
    except MSClipError as exc:
        if args.verbose:
            raise
        print(f"msclip: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("msclip: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())


if os.environ.get("MSCLIP_CLI_DEBUG"):  # pragma: no cover - developer switch
    logging.getLogger().setLevel(logging.DEBUG)
