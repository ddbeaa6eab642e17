"""Run msclip commands as a core-only install would (``pip install -e .``, no extras).

Every module that only an extra's packages provide is made unimportable (as if not installed), then the
commands given as a JSON list of argument lists run in this process; their exit codes come back as JSON on
the last line of stdout. Used by tests/test_install.py in a fresh interpreter.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
AGGREGATE_EXTRAS = ("all", "dev")


def closure(requirements: list[str]) -> set[str]:
    """Distributions these requirements pull in, transitively (as installed here)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen or name == "msclip":
            continue
        seen.add(name)
        try:
            needs = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        for need in map(Requirement, needs):
            extras = ["", *requirement.extras]
            if need.marker is None or any(need.marker.evaluate({"extra": e}) for e in extras):
                todo.append(need)
    return seen


def extras_only_modules() -> set[str]:
    """Top-level modules whose every distribution comes only with an extra, never with the core."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    core = closure(project["dependencies"])
    optional = project["optional-dependencies"]
    extras = set().union(*(closure(optional[k]) for k in optional if k not in AGGREGATE_EXTRAS)) - core
    return {
        module
        for module, dists in metadata.packages_distributions().items()
        if {canonicalize_name(d) for d in dists} <= extras
    }


if __name__ == "__main__":
    for module in extras_only_modules():
        sys.modules[module] = None  # type: ignore[assignment]  # "import module" now fails as if absent
    from msclip.cli import main

    codes = [main(argv) for argv in json.loads(sys.argv[1])]
    print(json.dumps(codes))
