"""The web app's HTTP side: a FastAPI application around one loaded model and, optionally, one index.

Every route answers JSON; user mistakes become ``{"error": "..."}`` with a 4xx status, never a traceback.
Uploads live in a temporary folder for the length of one request; examples and index images are server
files chosen by name or id from lists the server made, so no request can name a path.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import uuid
from collections import OrderedDict
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from msclip.app.previews import preview_png, previews
from msclip.app.uploads import Limits, Staged, display_name, for_page, open_checked, stage
from msclip.bands import LAYOUTS, RGB
from msclip.data import InputOptions
from msclip.errors import MSClipError
from msclip.io import read
from msclip.models import MSClipModel
from msclip.text import TEMPLATE_SETS, checked_names
from msclip.zeroshot import classify, embed

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
#: Result tables kept for CSV download (oldest dropped first).
KEPT_RESULTS = 64
#: At most this many footprints are sent to the map.
MAX_FOOTPRINTS = 5000


@cache
def presets() -> dict[str, list[str]]:
    """Class-name presets shown in the page (EuroSAT's ten classes, a land-cover set)."""
    return yaml.safe_load(resources.files("msclip.app").joinpath("presets.yaml").read_text(encoding="utf-8"))


def create_app(
    model: MSClipModel,
    index=None,
    examples: list[str] | tuple[str, ...] = (),
    limits: Limits | None = None,
    head=None,
) -> FastAPI:
    """The app for ``model``; ``index`` (an opened :class:`msclip.index.EmbeddingIndex`) enables Search;
    ``head`` (a :class:`msclip.Head` made for ``model``) classifies into its classes instead of typed ones."""
    if index is not None and index.model_name and index.model_name != model.spec.name:
        raise MSClipError(f"the index holds {index.model_name} embeddings but the app runs {model.spec.name}")
    if head is not None:
        head.check_model(model)
    limits = limits or Limits()
    examples_by_name = {Path(p).name: str(p) for p in examples}
    results: OrderedDict[str, pd.DataFrame] = OrderedDict()
    model_lock = threading.Lock()  # one forward pass at a time: requests queue instead of multiplying memory
    app = FastAPI(title="msclip", docs_url=None, redoc_url=None)  # Swagger UI would come from a CDN
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(MSClipError)
    async def user_error(request: Request, exc: MSClipError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def bad_form(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = ", ".join(str(e["loc"][-1]) for e in exc.errors())
        return JSONResponse({"error": f"missing or invalid form field(s): {fields}"}, status_code=422)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server log"}, 500)

    @app.middleware("http")
    async def limit_request_size(request: Request, call_next):
        """Refuse oversized bodies before reading them; the page shows the message."""
        if request.method == "POST":
            length = request.headers.get("content-length", "")
            if not length.isdigit():
                return JSONResponse({"error": "uploads need a Content-Length header"}, status_code=411)
            if int(length) > limits.max_request_bytes:
                mb = limits.max_request_bytes / 1e6
                return JSONResponse({"error": f"upload too large (over {mb:.0f} MB in one request)"}, 413)
        return await call_next(request)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/info")
    def info() -> dict:
        return {
            "model": model.spec.name,
            "bands": list(model.bands),
            "presets": presets(),
            "templates": list(TEMPLATE_SETS),
            "layouts": list(LAYOUTS),
            "examples": sorted(examples_by_name),
            "index": None if index is None else {"count": len(index), "model": index.model_name},
            "limits": {"max_file_mb": limits.max_file_mb, "max_files": limits.max_files},
            "head": None if head is None else {"method": head.method, "classes": head.class_names},
        }

    @app.post("/api/classify")
    def classify_images(
        classes: str = Form(""),
        files: list[UploadFile] = File(default=[]),  # noqa: B008 - FastAPI's way to declare form parts
        examples: list[str] = Form(default=[]),  # noqa: B008
        templates: str = Form("msclip"),
        layout: str = Form(""),
        boa_offset: str = Form("auto"),
    ) -> dict:
        files = [f for f in files if f.filename]  # an empty file input sends a nameless part
        if head is None and not classes:
            raise MSClipError("missing form field: classes (or start the app with --head)")
        names = head.class_names if head is not None else _class_list(classes, limits)
        options = _input_options(layout, boa_offset)
        if templates not in TEMPLATE_SETS:  # a file name here would read a server path
            raise MSClipError(f"unknown template set {templates!r}; use {', '.join(TEMPLATE_SETS)}")
        if not files and not examples:
            raise MSClipError("upload at least one image or pick an example")
        if len(files) + len(examples) > limits.max_files:
            raise MSClipError(
                f"too many images ({len(files) + len(examples)}); at most {limits.max_files} at once"
            )
        with tempfile.TemporaryDirectory(prefix="msclip-app-") as folder:
            items, errors = _stage_all(files, examples, examples_by_name, Path(folder), limits)
            shown = {}
            for item in items:
                try:
                    shown[item.path] = (item, previews(open_checked(item, limits, options.layout), options))
                except MSClipError as exc:
                    errors.append({"image": item.name, "message": str(exc)})
            if not shown:
                return {"classes": names, "results": [], "errors": errors, "csv": None}
            with model_lock:
                result = classify(
                    model,
                    list(shown),
                    None if head else names,
                    templates,
                    head=head,
                    options=options,
                    workers=0,
                )
        errors += [
            {"image": shown[path][0].name, "message": for_page(m, shown[path][0])}
            for path, m in result.skipped
        ]
        table = result.table.assign(image=result.table["image"].map(lambda p: shown[p][0].name))
        rows = [
            {
                "image": shown[path][0].name,
                "label": row["label"],
                "probabilities": [float(row[n]) for n in names],
                "filled_fraction": float(row["filled_fraction"]),
                **shown[path][1],
            }
            for path, (_, row) in zip(result.table["image"], table.iterrows(), strict=True)
        ]
        return {"classes": names, "results": rows, "errors": errors, "csv": _keep(results, table)}

    @app.get("/api/results/{result_id}.csv")
    def download(result_id: str) -> Response:
        if result_id not in results:
            return JSONResponse({"error": "result expired or unknown; classify again"}, status_code=404)
        csv = results[result_id].to_csv(index=False)
        headers = {"Content-Disposition": 'attachment; filename="msclip-results.csv"'}
        return Response(csv, media_type="text/csv", headers=headers)

    @app.post("/api/search")
    def search(
        query: str = Form(""),
        image: UploadFile | None = File(None),  # noqa: B008
        top_k: int = Form(10),
        bbox: str = Form(""),
        start: str = Form(""),
        end: str = Form(""),
        layout: str = Form(""),
        boa_offset: str = Form("auto"),
    ) -> dict:
        searchable = _require(index)
        if not 1 <= top_k <= limits.max_top_k:
            raise MSClipError(f"top k must be between 1 and {limits.max_top_k}")
        if image is not None and image.filename:
            what = display_name(image.filename)
            vector = _image_query(image, _input_options(layout, boa_offset))
        elif query.strip():
            (what,) = checked_names([query])
            with model_lock:
                vector = model.encode_text([what]).numpy()
        else:
            raise MSClipError("type a query or upload an image")
        hits = searchable.search(vector, top_k=top_k, bbox=_bbox(bbox), start=start or None, end=end or None)
        rows = [
            {
                "rank": int(hit.rank),
                "score": float(hit.score),
                "id": int(hit.id),
                "image": Path(hit.image).name,
                "datetime": _iso(hit.datetime),
                "geometry": _geojson(hit.geometry),
                "thumbnail": f"/api/thumbnail/{int(hit.id)}.png",
            }
            for hit in hits.itertuples(index=False)
        ]
        table = pd.DataFrame(rows, columns=["rank", "score", "id", "image", "datetime"]).assign(query=what)
        return {"query": what, "hits": rows, "csv": _keep(results, table)}

    @app.get("/api/footprints")
    def footprints() -> dict:
        rows = _require(index).metadata.head(MAX_FOOTPRINTS)
        features = [
            {
                "type": "Feature",
                "id": int(r.id),
                "geometry": _geojson(r.geometry),
                "properties": {"image": Path(r.image).name},
            }
            for r in rows.itertuples(index=False)
            if r.geometry is not None
        ]
        return {"type": "FeatureCollection", "features": features, "total": len(index)}

    @app.get("/api/thumbnail/{item_id}.png")
    def thumbnail(item_id: int) -> Response:
        png = _thumbnail(item_id)
        if png is None:
            return JSONResponse({"error": f"no preview for item {item_id}"}, status_code=404)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    def _image_query(upload: UploadFile, options: InputOptions) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="msclip-app-") as folder:
            item = stage(upload, Path(folder), 0, limits)
            open_checked(item, limits, options.layout)
            with model_lock:
                result = embed(model, [item.path], options=options, workers=0)
        if result.skipped:
            raise MSClipError(for_page(result.skipped[0][1], item))
        return np.asarray(result.table["embedding"].iloc[0], dtype=np.float32)[None]

    @lru_cache(maxsize=512)
    def _thumbnail(item_id: int) -> bytes | None:
        rows = _require(index).metadata  # ids are row numbers
        if not 0 <= item_id < len(rows):
            return None
        try:
            return preview_png(read(rows["image"].iloc[item_id]), RGB, InputOptions())
        except MSClipError:
            return None

    return app


def _class_list(text: str, limits: Limits) -> list[str]:
    """Class names typed one per line (or separated by commas); names only, never a server file's lines."""
    return checked_names([part for line in text.splitlines() for part in line.split(",")], limits.max_classes)


def _input_options(layout: str, boa_offset: str) -> InputOptions:
    return InputOptions(layout or None, None, boa_offset)


def _stage_all(
    files: list[UploadFile], examples: list[str], known: dict[str, str], folder: Path, limits: Limits
) -> tuple[list[Staged], list[dict]]:
    """Uploads copied into ``folder`` and examples picked by name; what cannot be used, with why."""
    items, errors = [], []
    for number, upload in enumerate(files):
        try:
            items.append(stage(upload, folder, number, limits))
        except MSClipError as exc:
            errors.append({"image": display_name(upload.filename), "message": str(exc)})
    for name in examples:
        if name in known:
            items.append(Staged(name, known[name]))
        else:
            errors.append({"image": name, "message": f"{name}: not one of the examples"})
    return items, errors


def _keep(results: OrderedDict, table: pd.DataFrame) -> str:
    """Remember a result table for download; the URL to fetch it as CSV."""
    result_id = uuid.uuid4().hex
    results[result_id] = table
    while len(results) > KEPT_RESULTS:
        results.popitem(last=False)
    return f"/api/results/{result_id}.csv"


def _require(index):
    if index is None:
        raise MSClipError("no index loaded: start the app with `msclip app --index DIR` to search")
    return index


def _bbox(text: str) -> tuple[float, float, float, float] | None:
    """'min lon, min lat, max lon, max lat' in degrees, or None when empty."""
    if not text.strip():
        return None
    try:
        box = tuple(float(v) for v in text.replace(";", ",").split(","))
    except ValueError:
        raise MSClipError(
            f"bounding box {text!r}: four numbers, min lon, min lat, max lon, max lat"
        ) from None
    if len(box) != 4:
        raise MSClipError(f"bounding box {text!r}: four numbers, min lon, min lat, max lon, max lat")
    west, south, east, north = box
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise MSClipError(
            f"bounding box {text!r}: needs -180 <= min lon < max lon <= 180, -90 <= min lat < max lat <= 90"
        )
    return box


def _iso(stamp) -> str | None:
    return None if stamp is None or pd.isna(stamp) else pd.Timestamp(stamp).isoformat()


def _geojson(geometry) -> dict | None:
    if geometry is None or geometry.is_empty:
        return None
    from shapely.geometry import mapping

    return mapping(geometry)
