"""Options shared by subcommands, and how results reach the terminal."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from msclip.bands import LAYOUTS

if TYPE_CHECKING:
    from msclip.data import InputOptions


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        help="registered name or open_clip architecture (default: what --checkpoint records, "
        "else Llama3-MS-CLIP-Base)",
    )
    group.add_argument("--checkpoint", help="local checkpoint (.pt official layout or .safetensors)")
    group.add_argument("--revision", help="Hugging Face revision (commit, tag or branch) to pin")
    group.add_argument("--sha256", help="expected sha256 of the downloaded checkpoint")
    group.add_argument("--device", choices=["cpu", "cuda", "mps"], help="default: best available")
    add_precision_option(group)
    group.add_argument("--backend", choices=["torch", "onnx"], default="torch", help="image encoder backend")


def add_precision_option(group) -> None:
    group.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        default="auto",
        help="auto (default): bf16 where the hardware computes it natively (AVX512_BF16/AMX CPUs, bf16 "
        "GPUs), else fp32; fp32 is the exact path",
    )


def add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image files, folders, globs, or .txt/.yaml lists of paths")
    group = parser.add_argument_group("input")
    group.add_argument(
        "--layout", choices=list(LAYOUTS), help="channel order of the files (default: by count)"
    )
    add_input_bands_option(group, "band names of the files' channels, in order (beats --layout)")
    group.add_argument(
        "--boa-offset",
        default="auto",
        choices=["auto", "0", "1000"],
        help="L2A baseline-04.00 offset to remove",
    )
    group.add_argument("--batch-size", type=positive_int, default=32)
    group.add_argument(
        "--workers",
        type=non_negative_int,
        help="DataLoader reader processes (default: a reader thread on < 8 cores, else by input size)",
    )


def add_input_bands_option(group, help: str) -> None:
    """``--input-bands``, the files' channel names, in every command (``--bands`` is the same option)."""
    group.add_argument("--input-bands", "--bands", dest="input_bands", nargs="+", metavar="BAND", help=help)


def model_args_from(args: argparse.Namespace):
    """The model options of a command, as data the scene engine can also ship to workers."""
    from msclip.models import ModelArgs

    return ModelArgs(
        args.model, args.checkpoint, args.device, args.precision, args.backend, args.revision, args.sha256
    )


def load_model_from(args: argparse.Namespace):
    model = model_args_from(args).load()
    announce(model, args.precision)
    return model


def announce(model, requested: str) -> None:
    """One stderr line naming the device and precision the model computes in (``auto`` is never a guess)."""
    how = " (auto)" if requested == "auto" else ""
    print(f"msclip: {model.spec.name} on {model.device}, {model.precision}{how}", file=sys.stderr)


def input_options_from(args: argparse.Namespace) -> InputOptions:
    from msclip.data import InputOptions

    return InputOptions(args.layout, tuple(args.input_bands) if args.input_bands else None, args.boa_offset)


def stream_options_from(args: argparse.Namespace) -> dict:
    return {
        "options": input_options_from(args),
        "batch_size": args.batch_size,
        "workers": args.workers,
        "progress": True,
    }


def show_table(table, title: str, max_rows: int = 20) -> None:
    """A readable table on the terminal (the first rows; files hold everything)."""
    from rich.console import Console
    from rich.table import Table

    view = Table(title=title)
    for column in table.columns:
        view.add_column(str(column))
    for row in table.head(max_rows).itertuples(index=False):
        view.add_row(*(_cell(v) for v in row))
    console = Console()
    if not console.is_terminal:  # files and pipes get whole lines, not an 80-column squeeze
        console = Console(width=200)
    console.print(view)
    if len(table) > max_rows:
        console.print(f"... {len(table) - max_rows} more rows")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def report_skipped(skipped: list[tuple[str, str]]) -> int:
    """List skipped inputs on stderr; exit code 3 when there were any."""
    if not skipped:
        return 0
    print(f"msclip: skipped {len(skipped)} input(s):", file=sys.stderr)
    for _, reason in skipped:
        print(f"  {reason}", file=sys.stderr)
    return 3


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (a count of 0 or -3 would silently give empty output)."""
    return _bounded_int(text, 1)


def non_negative_int(text: str) -> int:
    return _bounded_int(text, 0)


def _bounded_int(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number > 0 (a size or a time-out of 0 or less can only fail later)."""
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a share between 0 and 1 (a window's valid or cloudy share, a top-p)."""
    value = _float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value:  # NaN passes every comparison's "not"
        raise argparse.ArgumentTypeError("expected a number, got nan")
    return value


class LonLatBox(argparse.Action):
    """``--bbox W S E N`` in degrees, checked: an inverted or out-of-range box would match nothing."""

    def __call__(self, parser, namespace, values, option_string=None):
        west, south, east, north = values
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            parser.error(
                f"{option_string} W S E N must satisfy -180 <= W < E <= 180 and -90 <= S < N <= 90, "
                f"got {' '.join(f'{v:g}' for v in values)}"
            )
        setattr(namespace, self.dest, values)


#: Argument names that hold outputs; :func:`check_outputs` checks them before any work starts.
OUTPUT_ARGUMENTS = ("output", "footprints")


def check_outputs(args: argparse.Namespace) -> None:
    """Fail in one line, before loading a model, when an output cannot be written where it is asked."""
    for name in OUTPUT_ARGUMENTS:
        value = getattr(args, name, None)
        if isinstance(value, str) and value:
            check_writable(value)


def check_writable(path: str) -> None:
    """The output's folder exists or can be made, and this user may write there."""
    from msclip.errors import MSClipError

    target = Path(path)
    if target.is_dir() and not os.access(target, os.W_OK | os.X_OK):
        raise MSClipError(f"cannot write output {path}: no write permission in that folder")
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise MSClipError(f"cannot write output {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise MSClipError(f"cannot write output {path}: no write permission in {ancestor}")
