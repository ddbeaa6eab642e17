"""The web app's HTTP side: a FastAPI application around one loaded model and, optionally, one index and a
folder of scene class maps.

Every route answers JSON; user mistakes become ``{"error": "..."}`` with a 4xx status, never a traceback.
Uploads live in a temporary folder for the length of one request; examples, index images, maps and labelled
items are chosen by name or id from lists the server made, so no request can name a path.
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
import torch
import yaml
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from msclip.app.labels import Session, Sessions, adapt_session
from msclip.app.maps import SceneMapFile, remap, window_embedding
from msclip.app.previews import preview_png, previews
from msclip.app.uploads import Limits, Staged, display_name, for_page, open_checked, stage
from msclip.bands import LAYOUTS, RGB
from msclip.data import InputOptions
from msclip.errors import MSClipError
from msclip.io import read
from msclip.models import MSClipModel
from msclip.text import TEMPLATE_SETS, checked_names
from msclip.zeroshot import class_frame, class_scorer, class_table, embed, embed_batches

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
    maps: dict[str, SceneMapFile] | None = None,
    basemap: str | None = None,
) -> FastAPI:
    """The app for ``model``; ``index`` (an opened :class:`msclip.index.EmbeddingIndex`) enables Search;
    ``head`` (a :class:`msclip.Head` made for ``model``) classifies into its classes instead of typed ones;
    ``maps`` (:func:`msclip.app.maps.find_maps`) are shown in the Maps tab; ``basemap`` is a tile URL
    template (``https://tile.openstreetmap.org/{z}/{x}/{y}.png``) drawn under the bundled countries."""
    if index is not None and index.model_name and index.model_name != model.spec.name:
        raise MSClipError(f"the index holds {index.model_name} embeddings but the app runs {model.spec.name}")
    if head is not None:
        head.check_model(model)
    limits = limits or Limits()
    examples_by_name = {Path(p).name: str(p) for p in examples}
    results: OrderedDict[str, pd.DataFrame] = OrderedDict()
    maps = dict(maps or {})
    sessions = Sessions()
    work = tempfile.TemporaryDirectory(prefix="msclip-app-maps-")  # maps made with adapted heads
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

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": f"{request.url.path}: {exc.detail}"}, status_code=exc.status_code)

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
            "basemap": None if basemap is None else {"url": basemap, "attribution": attribution(basemap)},
            "maps": len(maps),
        }

    @app.post("/api/session")
    def new_session() -> dict:
        return {"session": sessions.create()}

    @app.post("/api/classify")
    def classify_images(
        classes: str = Form(""),
        files: list[UploadFile] = File(default=[]),  # noqa: B008 - FastAPI's way to declare form parts
        examples: list[str] = Form(default=[]),  # noqa: B008
        templates: str = Form("msclip"),
        layout: str = Form(""),
        boa_offset: str = Form("auto"),
        session: str = Form(""),
        adapted: bool = Form(False),
    ) -> dict:
        files = [f for f in files if f.filename]  # an empty file input sends a nameless part
        labels = sessions.find(session)
        scorer = _scoring_head(labels, adapted)
        if scorer is None and not classes:
            raise MSClipError("missing form field: classes (or start the app with --head)")
        names = scorer.class_names if scorer is not None else _class_list(classes, limits)
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
            skipped: list[tuple[str, str]] = []
            with model_lock:
                _, score = class_scorer(model, None if scorer else names, templates, True, scorer)
                batches = list(embed_batches(model, list(shown), options, workers=0, skipped=skipped))
        errors += [
            {"image": shown[path][0].name, "message": for_page(m, shown[path][0])} for path, m in skipped
        ]
        table = class_table([class_frame(b, names, score(b.embeddings)) for b in batches], names)
        paths, vectors = list(table["image"]), [v for b in batches for v in b.embeddings]
        table["image"] = [shown[path][0].name for path in paths]
        rows = [
            {
                "image": row["image"],
                "label": row["label"],
                "probabilities": [float(row[n]) for n in names],
                "filled_fraction": float(row["filled_fraction"]),
                "sample": None if labels is None else labels.add(row["image"], vector),
                **shown[path][1],
            }
            for path, (_, row), vector in zip(paths, table.iterrows(), vectors, strict=True)
        ]
        return {"classes": names, "results": rows, "errors": errors, "csv": _keep(results, table)}

    def _scoring_head(labels: Session | None, adapted: bool):
        """The head a classification uses: the session's adapted one when asked for, else --head's."""
        if not adapted:
            return head
        if labels is None or labels.head is None:
            raise MSClipError("no adapted head in this session yet: label items and press Adapt")
        return labels.head

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
        session: str = Form(""),
    ) -> dict:
        searchable = _require(index)
        labels = sessions.find(session)
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
                "sample": None if labels is None else labels.add(Path(hit.image).name, _stored(hit.id)),
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

    def _stored(item_id: int) -> torch.Tensor:
        """The index's embedding of an item (labelling a hit needs no second pass through the model)."""
        return torch.from_numpy(np.asarray(index.index.reconstruct(int(item_id)), dtype=np.float32))

    # ---- scene maps -------------------------------------------------------------------------------------

    def _map(map_id: str) -> SceneMapFile:
        if map_id not in maps:
            raise MSClipError(
                f"no map {map_id!r} here" if maps else "no maps loaded: start the app with --maps DIR"
            )
        return maps[map_id]

    @app.get("/api/maps")
    def list_maps() -> dict:
        return {"maps": [m.describe() for m in maps.values()]}

    @app.get("/api/maps/{map_id}/overlay.png")
    def overlay(map_id: str) -> Response:
        return Response(_overlay(map_id), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @lru_cache(maxsize=32)
    def _overlay(map_id: str) -> bytes:
        return _map(map_id).overlay_png()

    @app.get("/api/maps/{map_id}/at", response_model=None)
    def window_at(map_id: str, lon: float, lat: float) -> dict | JSONResponse:
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):  # also refuses NaN
            raise MSClipError(
                f"({lon}, {lat}) is not a longitude between -180 and 180 and a latitude between -90 and 90"
            )
        found = _map(map_id).at(lon, lat)
        if found is None:
            return JSONResponse({"error": "no mapped window here (off the map, nodata or cloud)"}, 404)
        return found

    @app.post("/api/maps/{map_id}/adapted")
    def map_with_head(map_id: str, session: str = Form(...)) -> dict:
        """Map the scene again with the session's adapted head; the new map joins the list."""
        source, labels = _map(map_id), sessions.get(session)
        if labels.head is None:
            raise MSClipError("no adapted head in this session yet: label items and press Adapt")
        with model_lock:
            made = remap(model, source, labels.head, Path(work.name))
        maps[made.id] = made
        return made.describe()

    # ---- labels and adaptation --------------------------------------------------------------------------

    @app.post("/api/labels")
    def set_labels(
        session: str = Form(...),
        label: str = Form(""),
        samples: list[str] = Form(default=[]),  # noqa: B008
        map_id: str = Form("", alias="map"),
        window: int | None = Form(None),
    ) -> dict:
        """Give items a class (``label`` empty: take it away): samples by id, or a window of a scene map."""
        labels = sessions.get(session)
        name = checked_names([label], limits.max_classes)[0] if label.strip() else ""
        if map_id:
            if window is None:
                raise MSClipError("give the window number of the map")
            scene_map = _map(map_id)
            with model_lock:
                vector = window_embedding(model, scene_map, window, InputOptions())
            samples = [*samples, labels.add(f"{scene_map.path.stem} window {window}", vector)]
        if not samples:
            raise MSClipError("tick at least one item to label")
        labels.label(samples, name)
        return labels.describe()

    @app.get("/api/labels")
    def get_labels(session: str) -> dict:
        return sessions.get(session).describe()

    @app.post("/api/adapt")
    def adapt_labels(session: str = Form(...)) -> dict:
        labels = sessions.get(session)
        with model_lock:
            return adapt_session(model, labels, limits.max_classes)

    @app.get("/api/heads/{head_id}.safetensors")
    def download_head(head_id: str) -> Response:
        data = sessions.head_file(head_id)
        if data is None:
            return JSONResponse({"error": "head expired or unknown; adapt again"}, status_code=404)
        headers = {"Content-Disposition": 'attachment; filename="msclip-head.safetensors"'}
        return Response(data, media_type="application/octet-stream", headers=headers)

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


def attribution(url: str) -> str:
    """The credit a tile layer shows: OpenStreetMap's own wording for its tiles, else the tile server."""
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or url
    if host.endswith("openstreetmap.org"):
        return '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
    return f"tiles: {host}"


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
