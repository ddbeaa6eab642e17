"""``msclip train``: contrastive training from a YAML config, each option overridable on the command line."""

from __future__ import annotations

import argparse
import sys

from msclip.errors import MSClipError

_NONE = {"none", "null", "~"}
_BOOL = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _converter(type_name: str):
    """str -> value for a TrainConfig field type such as 'float | None' or 'list[str] | None'."""
    base = float if "float" in type_name else int if "int" in type_name else str

    def convert(text: str):
        if "None" in type_name and text.lower() in _NONE:
            return None
        if "bool" in type_name:
            if text.lower() not in _BOOL:
                raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")
            return _BOOL[text.lower()]
        try:
            return base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {base.__name__}, not {text!r}") from None

    return convert


def register(subparsers) -> None:
    from msclip.training.config import FIELDS, RENAMED, list_fields

    p = subparsers.add_parser(
        "train",
        help="contrastive pre-training / fine-tuning (CPU, GPU, torchrun for many GPUs and nodes)",
        description="Train a (multispectral) CLIP model on captioned chips. Options come from the defaults, "
        "then --config, then the flags below. Launch on several GPUs/nodes with torchrun.",
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("--config", help="YAML file of options (the keys are the flag names below)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    lists = list_fields()
    group = p.add_argument_group("options (see README: Training)")
    for name, field in FIELDS.items():
        type_name = str(field.type)
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=_converter(type_name),
            nargs="+" if name in lists else None,
            metavar=name.upper(),
        )
    for old, new in RENAMED.items():
        group.add_argument(
            f"--{old}",
            dest=old,
            type=_converter(str(FIELDS[new].type)),
            nargs="+" if new in lists else None,
            metavar=new.upper(),
            help=f"deprecated spelling of --{new.replace('_', '-')}",
        )
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    import yaml

    from msclip.cli.common import report_skipped
    from msclip.training import make_config, train
    from msclip.training.config import FIELDS, RENAMED

    known = {*FIELDS, *RENAMED}
    overrides = {k: None if v == [None] else v for k, v in vars(args).items() if k in known}
    config = make_config(getattr(args, "config", None), overrides)
    if getattr(args, "print_config", False):
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    summary = train(config)
    if not summary.get("finished"):
        raise MSClipError("training stopped before its last step")
    if "exported" not in summary:  # another rank of a multi-process run: rank 0 exports and reports
        return 0
    print(
        f"trained {summary['step']} steps, loss {summary['loss']:.4f}; model: {summary['exported']} "
        f"and {summary['safetensors']}",
        file=sys.stderr,
    )
    return report_skipped([(reason, reason) for reason in summary["skipped"]])
