"""Batch embedding of many scenes, here or on a Dask cluster: one task per scene, one GeoParquet per scene.

A finished scene's file exists (written atomically), so a rerun skips it: batches are resumable. Each
worker process loads the model once and keeps it for all its scenes; with a GPU it runs there.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path

from tqdm.auto import tqdm

from msclip.data import InputOptions
from msclip.errors import MSClipError, describe_failure
from msclip.models import ModelArgs, MSClipModel
from msclip.scenes.embed import WindowOptions, embed_scene, write_geoparquet
from msclip.scenes.source import open_scene

ENGINES = ("local", "dask")

#: Seconds to reach a Dask scheduler before giving up (Dask waits 30 s by default).
CONNECT_TIMEOUT_S = 5
#: Seconds a local worker process is given to exit: with torch loaded, interpreter teardown alone takes
#: 2-5 s on a busy 2-core machine, past Dask's 4 s before it kills the process and says so.
WORKER_EXIT_S = 60


@dataclass(frozen=True)
class SceneJob:
    """Everything one scene's task needs besides the model."""

    options: InputOptions = field(default_factory=InputOptions)
    windows: WindowOptions = field(default_factory=WindowOptions)
    batch_size: int = 32
    workers: int = 0


@dataclass
class BatchReport:
    """Outputs written now, outputs already there (not redone), and scenes that failed, as (scene, reason)."""

    written: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@cache
def worker_model(args: ModelArgs) -> MSClipModel:
    """The model, loaded once per process (a Dask worker embeds many scenes with it)."""
    return args.load()


def embed_scene_to_file(location: str, output: str, model_args: ModelArgs, job: SceneJob) -> str:
    """One task: embed a scene's windows into a GeoParquet at ``output``."""
    model = worker_model(model_args)
    scene = open_scene(location, job.options.layout, list(job.options.bands) if job.options.bands else None)
    table = embed_scene(
        model, scene, options=job.options, windows=job.windows, batch_size=job.batch_size, workers=job.workers
    )
    write_geoparquet(table, output, model)
    return output


def scene_outputs(locations: list[str], folder: str) -> list[str]:
    """One output per scene in ``folder``, named after the scene (plus a hash of its path if names clash)."""
    stems = [Path(location.rstrip("/")).stem or "scene" for location in locations]
    names = [
        f"{stem}-{hashlib.sha1(location.encode()).hexdigest()[:8]}" if stems.count(stem) > 1 else stem
        for stem, location in zip(stems, locations, strict=True)
    ]
    return [str(Path(folder) / f"{name}.parquet") for name in names]


def embed_scenes(
    locations: list[str],
    outputs: list[str],
    model_args: ModelArgs,
    job: SceneJob,
    engine: str = "local",
    cluster: str | None = None,
    resume: bool = True,
) -> BatchReport:
    """Embed each scene into its output; scenes whose output exists are left alone when ``resume``.

    ``engine="dask"`` (implied by ``cluster``) sends one task per scene to the Dask scheduler at ``cluster``
    (``tcp://host:8786``), or to a local cluster of one worker process per core when no address is given. A
    scheduler that cannot be reached within :data:`CONNECT_TIMEOUT_S` is an error, raised before any work.
    """
    if engine not in ENGINES:
        raise MSClipError(f"unknown engine {engine!r}; use {', '.join(ENGINES)}")
    report = BatchReport()
    todo = []
    for location, output in zip(locations, outputs, strict=True):
        if resume and Path(output).is_file():
            report.existing.append(output)
        else:
            todo.append((location, output))
    if todo:
        run = _run_dask if engine == "dask" or cluster else _run_here
        run(todo, model_args, job, cluster, report)
    return report


def _run_here(todo, model_args: ModelArgs, job: SceneJob, cluster, report: BatchReport) -> None:
    for location, output in tqdm(todo, unit="scene", desc="scenes", disable=len(todo) < 2):
        _record(report, location, partial(embed_scene_to_file, location, output, model_args, job))


def _run_dask(todo, model_args: ModelArgs, job: SceneJob, cluster: str | None, report: BatchReport) -> None:
    from dask.distributed import LocalCluster, as_completed

    with _quiet_dask(), contextlib.ExitStack() as stack:
        if cluster is None:  # one single-threaded worker process per core
            local = stack.enter_context(LocalCluster(threads_per_worker=1, dashboard_address=None))
            stack.callback(_close_workers, local)  # after the client is closed, before the cluster is
            cluster = local
        client = stack.enter_context(_connect(cluster))
        futures = {
            client.submit(
                embed_scene_to_file, location, output, model_args, job, key=f"embed-{output}"
            ): location
            for location, output in todo
        }
        for future in tqdm(as_completed(futures), total=len(futures), unit="scene", desc="scenes"):
            _record(report, futures[future], future.result)


def _connect(cluster):
    """A client of ``cluster``; a scheduler that does not answer is one line, not Dask's traceback."""
    from dask.distributed import Client

    if not isinstance(cluster, str):
        return Client(cluster)
    try:
        return Client(cluster, timeout=CONNECT_TIMEOUT_S)
    except (
        Exception
    ) as exc:  # OSError (timeout, refused), ValueError (address), anything a non-scheduler says
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MSClipError(f"cannot reach the Dask scheduler at {cluster} ({reason})") from exc


def _close_workers(cluster) -> None:
    """Stop a local cluster's worker processes, waiting for them to exit instead of killing them."""
    import asyncio

    async def close_all() -> None:
        await asyncio.gather(*(worker.close(timeout=WORKER_EXIT_S) for worker in cluster.workers.values()))

    cluster.sync(close_all)


@contextlib.contextmanager
def _quiet_dask():
    """Dask logs every start and stop of its scheduler and workers at INFO; keep warnings and errors."""
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _record(report: BatchReport, location: str, task: Callable[[], str]) -> None:
    """Run (or collect) one scene's task; a user-level problem with that scene skips it, not the batch."""
    try:
        report.written.append(task())
    except Exception as exc:  # whatever failed in this scene's task (on any engine) skips it, not the batch
        report.skipped.append((location, describe_failure(location, exc)))
