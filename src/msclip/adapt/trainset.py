"""Labelled examples for ``msclip adapt``: a class-folder tree, or a table with ``image`` and ``label``.

A table may have a ``split`` column; then only rows whose split is ``train`` are used. Relative image
paths in a table are relative to the table's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from msclip.errors import MSClipError
from msclip.io import RASTER_SUFFIXES, iter_paths

TABLE_SUFFIXES = (".csv", ".parquet", ".json")


@dataclass
class Examples:
    """Image paths with their class names, and the classes in a fixed (sorted) order."""

    paths: list[str]
    labels: list[str]

    @property
    def class_names(self) -> list[str]:
        return sorted(set(self.labels))


def read_examples(source: str) -> Examples:
    """The labelled images of a class-folder tree or of an image/label table."""
    path = Path(source)
    if path.is_dir():
        return _from_folders(path)
    if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        return _from_table(path)
    raise MSClipError(
        f"{source}: give a folder with one sub-folder per class, or a .csv/.parquet/.json table"
    )


def _from_folders(root: Path) -> Examples:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES]
    if loose:
        raise MSClipError(
            f"{root}: images outside a class folder ({loose[0]}...): put each in its class folder"
        )
    paths, labels = [], []
    for folder in classes:
        try:
            found = iter_paths([folder])
        except MSClipError:
            raise MSClipError(f"{folder}: class folder has no images") from None
        paths += found
        labels += [folder.name] * len(found)
    _check_classes(root, labels)
    return Examples(paths, labels)


def _from_table(path: Path) -> Examples:
    import pandas as pd

    readers = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".json": pd.read_json}
    try:
        table = readers[path.suffix.lower()](path)
    except Exception as exc:
        raise MSClipError(f"{path}: cannot read the table ({type(exc).__name__}: {exc})") from exc
    missing = {"image", "label"} - set(table.columns)
    if missing:
        raise MSClipError(
            f"{path}: the table needs columns image and label (missing {', '.join(sorted(missing))})"
        )
    if "split" in table.columns:
        table = table[table["split"].astype(str).str.lower() == "train"]
    paths = [str(p if Path(p).is_absolute() else path.parent / p) for p in table["image"].astype(str)]
    labels = [str(label).strip() for label in table["label"]]
    conflicting = sorted(
        {p for p, label in zip(paths, labels, strict=True) if labels[paths.index(p)] != label}
    )
    if conflicting:
        raise MSClipError(f"{path}: image listed with two labels: {conflicting[0]}")
    _check_classes(path, labels)
    return Examples(paths, labels)


def _check_classes(source: Path, labels: list[str]) -> None:
    if len(set(labels)) < 2:
        raise MSClipError(f"{source}: need labelled images of at least two classes, found {len(set(labels))}")
