"""SSL4EO-S12 v1.1 as published: zipped Zarr files of 64 samples x 4 timestamps of 264 x 264 Sentinel-2
L2A chips, and caption tables (CSV/Parquet) that name a sample and a timestamp.

Layout read here (xarray): data variable ``bands`` with dims (sample, time, band, y, x), int16; coordinate
``band`` with the band names, ``sample`` with the sample ids, ``time_`` (sample, time) with acquisition
dates; per-sample ``center_lat``, ``center_lon``, ``crs``. The L2A digital numbers carry the baseline-04.00
offset (+1000); it is removed before normalisation because the model's statistics are offset-free.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from msclip.errors import MSClipError
from msclip.sources import ZarrSample, open_zarr, zarr_files

SAMPLE_COLUMNS = ("sample_id", "sample", "id", "key")
TIME_COLUMNS = ("time", "timestamp", "time_", "date", "season")
CAPTION_COLUMNS = ("caption", "captions", "text")
FILE_COLUMNS = ("file", "file_name", "zarr_file", "filename")


def read_captions(path: str | Path) -> pd.DataFrame:
    """All caption tables at ``path`` as columns (file, sample_id, time, caption)."""
    path = Path(path)
    files = sorted([*path.glob("*.csv"), *path.glob("*.parquet")]) if path.is_dir() else [path]
    if not files or not files[0].exists():
        raise MSClipError(f"no caption tables (.csv/.parquet) at {path}")
    tables = [pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f, dtype=str) for f in files]
    table = pd.concat(tables, ignore_index=True)
    columns = {name.lower(): name for name in table.columns}

    def pick(candidates, required=True):
        found = next((columns[c] for c in candidates if c in columns), None)
        if found is None and required:
            raise MSClipError(f"{path}: caption table needs one of the columns {', '.join(candidates)}")
        return found

    captions = table[pick(CAPTION_COLUMNS)]
    out = pd.DataFrame(
        {
            "sample_id": table[pick(SAMPLE_COLUMNS)].astype(str),
            "time": table[pick(TIME_COLUMNS)].astype(str),
            "caption": captions.astype(str),
            # where a row came from, for reports (the first data row is row 2, as a spreadsheet shows it)
            "row": [
                f"{f.name} row {i + 2}" for f, t in zip(files, tables, strict=True) for i in range(len(t))
            ],
            "blank": captions.isna() | (captions.astype(str).str.strip() == ""),
        }
    )
    file_column = pick(FILE_COLUMNS, required=False)
    out["file"] = table[file_column].map(lambda f: Path(str(f)).name.split(".")[0]) if file_column else None
    return out


def _time_keys(dates: np.ndarray) -> list[set[str]]:
    """What a caption's timestamp may say for each time slot: its index or its date (YYYY-MM-DD[...])."""
    keys = []
    for position, date in enumerate(dates):
        text = str(np.datetime_as_string(np.datetime64(date, "s"))) if not pd.isna(date) else ""
        keys.append({str(position), text, text[:10], text.replace("T", " ")})
    return keys


class SSL4EOSource:
    """Index -> (Raster, captions) over every (file, sample, timestamp) that has a caption."""

    def __init__(self, data: str | Path, captions: str | Path | None):
        if captions is None:
            raise MSClipError("SSL4EO-S12 data needs --captions (a caption CSV/Parquet file or folder)")
        self.files = zarr_files(data)
        table = read_captions(captions)
        self.entries: list[tuple[int, int, int, list[str]]] = []
        self.sample_ids: list[list[str]] = []  # per file
        self._used: set[int] = set()
        usable = table[~table["blank"]]
        for file_index, file in enumerate(self.files):
            with open_zarr(file) as ds:
                self._index(file_index, file, ds, usable)
        if not self.entries:
            raise MSClipError(f"no caption in {captions} matches a sample and timestamp of {data}")
        #: caption rows that give no training pair, counted and named (a few row numbers as examples)
        self.dropped = _unmatched_report(table, self._used)

    def _index(self, file_index: int, file: Path, ds, table: pd.DataFrame) -> None:
        stem = file.name.split(".")[0]
        rows = table[(table["file"] == stem) | table["file"].isna()] if table["file"].notna().any() else table
        by_sample = {sid: group for sid, group in rows.groupby("sample_id")}
        sample_ids = [str(s) for s in ds["sample"].values]
        self.sample_ids.append(sample_ids)
        time_name = "time_" if "time_" in ds.variables else "time"
        for sample_index, sample_id in enumerate(sample_ids):
            group = by_sample.get(sample_id)
            if group is None:
                continue
            for time_index, keys in enumerate(_time_keys(ds[time_name].values[sample_index])):
                matched = group[group["time"].isin(keys)]
                self._used.update(matched.index)
                captions = matched["caption"].tolist()
                if captions:
                    self.entries.append((file_index, sample_index, time_index, captions))

    def __len__(self) -> int:
        return len(self.entries)

    def item(self, index: int) -> tuple[ZarrSample, list[str]]:
        """Where the ``index``-th pair's pixels come from, and its captions."""
        file_index, sample_index, time_index, captions = self.entries[index]
        sample_id = self.sample_ids[file_index][sample_index]
        return ZarrSample(str(self.files[file_index]), sample_index, time_index, sample_id), captions


def _unmatched_report(table: pd.DataFrame, used: set[int]) -> list[str]:
    """One line per kind of unusable caption row: blank ones, and ones matching no sample and timestamp."""
    lines = []
    blank = table[table["blank"]]
    unmatched = table[~table["blank"] & ~table.index.isin(list(used))]
    for rows, why in ((blank, "blank caption"), (unmatched, "no sample and timestamp of the data match")):
        if len(rows):
            examples = ", ".join(rows["row"].head(5))
            more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
            lines.append(f"{len(rows)} caption row(s) left out ({why}): {examples}{more}")
    return lines
