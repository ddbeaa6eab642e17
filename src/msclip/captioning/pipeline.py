"""The captioning run: shard -> skip finished chips -> batches of (tags, Q/A, caption, quality) -> Parquet parts.

Resumable by construction: every ``flush_every`` chips (and when the run stops on an error or Ctrl-C) a
part file is written atomically into the output folder, and a restarted run reads the keys of all parts and
skips those chips, so a kill loses at most the chips since the last part and never leaves a half-written
file. Shards split chips by a hash of their key, so any machine can compute its share from the same inputs.
"""

from __future__ import annotations

import json
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from msclip.captioning.backends import Backend
from msclip.captioning.chips import ChipSource
from msclip.captioning.overture import OvertureIndex
from msclip.captioning.prompts import PromptSet, clean_caption, conversation, parse_pairs, prompt_set
from msclip.captioning.quality import check, summary
from msclip.errors import MSClipError, SkippedImage
from msclip.io import atomic_write
from msclip.zeroshot import Result

#: Columns that identify a chip, in ChipSource.key order (GeoTIFF: image; SSL4EO-S12: file, sample_id, time_id).
KEY_COLUMNS = ("image", "file", "sample_id", "time_id")
LIST_COLUMNS = ("classes", "tags", "names", "tags_mentioned", "absent_classes")


@dataclass
class CaptionResult(Result):
    """This shard's captions (all parts, old and new), the skipped chips, and the quality summary."""

    summary: dict = field(default_factory=dict)


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' (0 <= i < n) -> (i, n)."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise MSClipError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise MSClipError(f"--shard {text}: need 0 <= i < n")
    return index, count


def in_shard(chip_id: str, shard: tuple[int, int]) -> bool:
    return zlib.crc32(chip_id.encode("utf-8")) % shard[1] == shard[0]


def caption(
    sources: list[ChipSource],
    index: OvertureIndex,
    backend: Backend | None,
    output: str | Path,
    prompts: PromptSet | None = None,
    *,
    batch_size: int = 8,
    flush_every: int = 64,
    shard: tuple[int, int] = (0, 1),
    workers: int = 4,
    progress: bool = True,
) -> CaptionResult:
    """Caption this shard's unfinished chips into Parquet parts under ``output``; ``backend`` None writes tags only."""
    from tqdm.auto import tqdm

    output = Path(output)
    check_output_kind(output, captions=backend is not None)
    output.mkdir(parents=True, exist_ok=True)
    prompts = prompts or prompt_set()
    done = finished_ids(output)
    todo = [s for s in sources if in_shard(s.id, shard) and s.id not in done]
    step = _Step(index, backend, prompts)
    rows: list[dict] = []
    skipped: list[tuple[str, str]] = []
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    label = f"caption {shard[0]}/{shard[1]}"
    try:
        with (
            ThreadPoolExecutor(workers) as pool,
            tqdm(total=len(todo), unit="chip", desc=label, disable=not progress) as bar,
        ):
            pending = [pool.submit(s.load) for s in batches[0]] if batches else []
            for number, batch in enumerate(batches):
                loaded = pending
                if number + 1 < len(batches):  # read the next batch while the VLM works on this one
                    pending = [pool.submit(s.load) for s in batches[number + 1]]
                new_rows, new_skipped = step(batch, loaded)
                rows += new_rows
                skipped += new_skipped
                if len(rows) >= flush_every:
                    write_part(output, rows, shard)
                    rows = []
                bar.update(len(batch))
    finally:  # Ctrl-C or a crashed model keeps what is done; only a hard kill loses the unflushed rows
        write_part(output, rows, shard)
    table = read_captions(output, shard)
    report = summary(table)
    report["skipped"] = len(skipped)
    path = output / f"_summary-{_shard_name(shard)}.json"
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1), encoding="utf-8"))
    return CaptionResult(table, skipped, report)


class _Step:
    """One batch: load -> tags -> questions -> caption -> quality rows (failed chips are skipped, not written)."""

    def __init__(self, index: OvertureIndex, backend: Backend | None, prompts: PromptSet):
        self.index = index
        self.backend = backend
        self.prompts = prompts
        self.vocabulary = index.vocabulary
        if backend is not None:
            generation = {"backend": type(backend).__name__, **backend.settings.as_dict()}
            self.run_columns = {
                "model": backend.model_name,
                "prompt_version": prompts.version,
                "generation": json.dumps(generation, sort_keys=True),
            }

    def __call__(self, batch: list[ChipSource], loaded) -> tuple[list[dict], list[tuple[str, str]]]:
        chips, skipped = [], []
        for source, future in zip(batch, loaded, strict=True):
            try:
                chips.append((source, *future.result()))
            except SkippedImage as exc:
                skipped.append((source.id, str(exc)))
        if not chips:
            return [], skipped
        tags = self.index.tags([footprint for _, footprint, _ in chips])
        rows = [
            {**s.key, "classes": t.classes, "tags": t.tags, "names": t.names}
            for (s, _, _), t in zip(chips, tags, strict=True)
        ]
        if self.backend is None:
            return rows, skipped
        views = [view for _, _, view in chips]
        answers = self.backend.generate([conversation(self.prompts, t) for t in tags], views)
        asked = [i for i, a in enumerate(answers) if isinstance(a, str)]
        captions = dict.fromkeys(range(len(chips)))
        if asked:
            replies = self.backend.generate(
                [conversation(self.prompts, tags[i], str(answers[i])) for i in asked],
                [views[i] for i in asked],
            )
            captions.update(zip(asked, replies, strict=True))
        finished = []
        for i, row in enumerate(rows):
            reply = captions[i] if captions[i] is not None else answers[i]
            if not isinstance(reply, str):
                skipped.append((chips[i][0].id, f"{chips[i][0].id}: {reply}"))
                continue
            text = clean_caption(reply)
            pairs = parse_pairs(str(answers[i]))  # a reply means the first answer was text
            row.update({"caption": text, **{f"question_{k + 1}": p for k, p in enumerate(pairs)}})
            row.update(self.run_columns)
            row.update(check(text, row["tags"], self.vocabulary))
            finished.append(row)
        return finished, skipped


def check_output_kind(output: str | Path, captions: bool) -> None:
    """A folder holds one kind of output, tags only or captions: a resume skips the chips it holds, so a
    captioning run into a tags-only folder would caption nothing (and a tags-only run add nothing)."""
    import pyarrow.parquet as pq

    parts = sorted(Path(output).glob("part-*.parquet"))
    if not parts or ("caption" in pq.read_schema(parts[0]).names) == captions:
        return
    if captions:
        raise MSClipError(f"{output} holds tags only (--tags-only): caption into another --output folder")
    raise MSClipError(f"{output} holds captions (with their tags): write --tags-only into another folder")


def finished_ids(output: Path) -> set[str]:
    """Keys of every chip already written under ``output`` (by any shard)."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for part in sorted(output.glob("part-*.parquet")):
        keys = [c for c in KEY_COLUMNS if c in pq.read_schema(part).names]
        table = pd.read_parquet(part, columns=keys)  # only the keys: cheap even for millions of rows
        columns = [table[c].astype(str) for c in keys]
        done.update(columns[0].str.cat(columns[1:], sep="|") if len(columns) > 1 else columns[0])
    return done


def write_part(output: Path, rows: list[dict], shard: tuple[int, int]) -> None:
    """Rows as one Parquet part, written atomically (list columns typed, so parts always concatenate)."""
    if not rows:
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame(rows)
    types = {
        "tag_coverage": pa.float64(),
        "n_words": pa.int64(),
        "repeated_sentences": pa.int64(),
        "flagged": pa.bool_(),
    }
    types.update(dict.fromkeys(LIST_COLUMNS, pa.list_(pa.string())))
    schema = pa.schema([pa.field(c, types.get(c, pa.string())) for c in frame.columns])
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    path = output / f"part-{_shard_name(shard)}-{uuid.uuid4().hex[:12]}.parquet"
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_captions(output: str | Path, shard: tuple[int, int] | None = None) -> pd.DataFrame:
    """All captions written under ``output`` (or one shard's), as one table."""
    pattern = f"part-{_shard_name(shard)}-*.parquet" if shard else "part-*.parquet"
    parts = sorted(Path(output).glob(pattern))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts else pd.DataFrame()


def _shard_name(shard: tuple[int, int]) -> str:
    return f"{shard[0]:05d}-of-{shard[1]:05d}"
