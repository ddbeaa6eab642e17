"""End to end in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright): upload a real
chip, classify it, see the result; search the small index and see hits on the map over the bundled countries;
see a scene's class map; label chips, adapt and see the predictions change. Screenshots are kept."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import rasterio

from tests.app.conftest import MAP_CLASSES, window_centres

CHROMIUM = Path("/usr/bin/chromium")
#: Screenshots are test artefacts: kept after the run in test-artifacts/ (or $MSCLIP_TEST_ARTIFACTS).
ARTIFACTS = Path(
    os.environ.get("MSCLIP_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
)


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


@pytest.fixture(scope="module")
def server_url(app):
    """The app served by uvicorn on a free local port, in a thread, for the length of this module."""
    with serving(app) as url:
        yield url


@contextlib.contextmanager
def serving(app):
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


#: Every URL the page asked for: all must be the app's own (no CDN, no tiles without --basemap).
requested: list[str] = []


def pixel(page, selector: str, x: float, y: float) -> list[int]:
    """RGB of the screen at (x, y) inside the element, read from a screenshot of it."""
    import io

    from PIL import Image

    shot = Image.open(io.BytesIO(page.locator(selector).screenshot())).convert("RGB")
    return list(shot.getpixel((round(x), round(y))))


@pytest.fixture(scope="module")
def page(server_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        page.on("request", lambda request: requested.append(request.url))
        page.goto(server_url)
        page.wait_for_selector("body[data-ready=true]")  # info, map, countries and scene maps drawn
        yield page
        browser.close()


def test_no_download_link_before_a_result(page):
    """The link's class sets display:inline-block, which must not override its hidden attribute."""
    assert page.get_attribute("#classify-csv", "hidden") is not None
    assert not page.is_visible("#classify-csv")


def test_upload_classify_and_see_the_result(page, chip_paths, tmp_path_factory):
    chip = chip_paths[0]
    not_a_raster = tmp_path_factory.mktemp("uploads") / "notes.tif"
    not_a_raster.write_text("not a raster")
    page.set_input_files("#files", [str(chip), str(not_a_raster)])
    page.select_option("#preset", "Land cover")
    page.click("#classify-button")
    card = page.wait_for_selector(".card.result")
    assert chip.name in card.inner_text()
    assert page.locator(".card.result .bar").count() == 6  # one bar per class of the preset
    loaded = page.eval_on_selector_all(
        ".card.result img", "imgs => imgs.map(i => i.complete && i.naturalWidth)"
    )
    assert loaded == [224, 224]  # true colour and false colour pictures decoded
    assert "notes.tif: not a raster" in page.inner_text("#classify-errors")
    assert page.is_visible("#classify-csv")
    csv = page.evaluate("fetch(document.querySelector('#classify-csv').href).then(r => r.text())")
    assert csv.startswith("image,label,ocean,agriculture,snow,urban area,forest,bare soil,filled_fraction")
    assert chip.name in csv
    shot = screenshot_path("classify.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def test_the_map_draws_the_bundled_countries_offline(page, server_url):
    page.click("button[data-tab=search]")
    assert page.evaluate("layers.countries.getLayers().length") > 200  # Natural Earth 1:50m countries
    assert page.locator("#map .leaflet-countries-pane canvas").count() == 1
    assert page.locator("#map path.footprint").count() == 5  # every chip of the index drawn
    assert page.locator("#map .leaflet-tile").count() == 0  # no --basemap: no tiles asked for
    page.evaluate("void map.setView([10, 20], 3, {animate: false})")  # Chad, in the middle of Africa
    at = page.evaluate("(p => [p.x, p.y])(map.latLngToContainerPoint([15, 18]))")
    sea = page.evaluate("(p => [p.x, p.y])(map.latLngToContainerPoint([0, -8]))")  # Gulf of Guinea
    assert pixel(page, "#map", *at) == [0xF4, 0xF1, 0xE8]  # land colour
    assert pixel(page, "#map", *sea) == [0xCF, 0xE3, 0xF3]  # sea colour
    assert all(url.startswith(server_url) for url in requested), [
        u for u in requested if not u.startswith(server_url)
    ]
    assert "Natural Earth" in page.inner_text("#map .leaflet-control-attribution")
    shot = screenshot_path("map-countries.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def test_search_the_index_and_see_hits_on_the_map(page):
    page.click("button[data-tab=search]")
    page.fill("#query", "a meandering frozen river")
    page.fill("#top_k", "3")
    page.click("#search-button")
    page.wait_for_selector(".hit")
    assert page.locator(".hit").count() == 3
    assert page.locator("#map path.hit-mark").count() == 3
    page.wait_for_function(
        "[...document.querySelectorAll('.hit img')].every(i => i.complete && i.naturalWidth)"
    )
    assert "#1 ·" in page.inner_text("#search-results")
    shot = screenshot_path("search.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def test_a_box_dragged_on_the_map_filters_the_search(page):
    first = page.inner_text(".hit .muted")  # the best hit of the previous test's query
    page.evaluate("void map.setView(layers.hits.getLayers()[0].getBounds().getCenter(), 6, {animate: false})")
    mark = page.locator("#map path.hit-mark-dot").first.bounding_box()
    x, y = mark["x"] + mark["width"] / 2, mark["y"] + mark["height"] / 2
    page.click("#draw-box")
    page.mouse.move(x - 20, y - 20)
    page.mouse.down()
    page.mouse.move(x + 20, y + 20, steps=4)
    page.mouse.up()
    assert page.locator("#map path.box").count() == 1
    assert float(page.input_value("#minlon")) < float(page.input_value("#maxlon"))
    page.click("#search-button")
    page.wait_for_function("document.querySelectorAll('.hit').length === 1")
    assert page.inner_text(".hit .muted") == first
    shot = screenshot_path("search-box.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def screen_point(page, lon: float, lat: float) -> tuple[float, float]:
    return tuple(page.evaluate(f"(p => [p.x, p.y])(map.latLngToContainerPoint([{lat}, {lon}]))"))


def test_label_three_chips_per_class_adapt_and_see_new_predictions(page, six_chips):
    page.click("button[data-tab=classify]")
    page.select_option("#preset", "")
    page.fill("#classes", "ocean\nsnow")
    page.set_input_files("#files", [str(p) for p in six_chips])
    page.click("#classify-button")
    page.wait_for_function("document.querySelectorAll('.card.result').length === 6")
    cards = page.locator(".card.result")
    before = [cards.nth(i).locator("h3 .label").inner_text() for i in range(6)]
    wanted = {}
    for label, numbers in [("snow", (0, 2, 4)), ("ocean", (1, 3, 5))]:
        for i in numbers:
            cards.nth(i).locator("input[data-sample]").check()
            wanted[i] = label
        page.fill("#label-class", label)
        page.click("#label-button")
        page.wait_for_function(f"document.querySelector('#label-counts').textContent.includes('{label} 3')")
    assert [cards.nth(i).locator(".given").inner_text() for i in range(6)] == [wanted[i] for i in range(6)]
    page.click("#adapt-button")
    page.wait_for_function(
        "document.querySelector('#adapt-status').textContent.includes('held-out accuracy')"
    )
    assert re.search(r"held-out accuracy \d+% \(6 labels", page.inner_text("#adapt-status"))
    after = [cards.nth(i).locator("h3 .label").inner_text() for i in range(6)]
    assert after == [wanted[i] for i in range(6)]  # the head learnt the labels
    assert after != before  # zero-shot did not give them
    head = page.evaluate(
        "fetch(document.querySelector('#head-link').href).then(r => r.arrayBuffer()).then(b => b.byteLength)"
    )
    assert head > 1000
    assert page.is_checked("#adapted")  # the next Classify uses the adapted head
    shot = screenshot_path("label-adapt.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def test_a_scene_map_shows_each_window_in_its_class_colour(page, scene_maps):
    page.click("button[data-tab=maps]")
    page.wait_for_function("document.querySelector('#map img.scene-overlay')?.complete")
    page.evaluate("$('opacity').value = 1; $('opacity').dispatchEvent(new Event('input'))")
    listed = page.evaluate("current")
    swatches = page.eval_on_selector_all(
        "#legend .swatch", "s => s.map(e => getComputedStyle(e).backgroundColor)"
    )
    rgb = [[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in listed["colours"]]
    assert swatches == [f"rgb({r}, {g}, {b})" for r, g, b in rgb]  # the legend's colours are the overlay's
    with rasterio.open(scene_maps["tiled"].path) as src:
        labels = src.read(src.count).ravel().astype(int)
    assert set(labels) == {5, 7}  # two classes, so a wrong colour cannot pass by chance
    for window, lon, lat in window_centres(scene_maps["tiled"]):
        assert pixel(page, "#map", *screen_point(page, lon, lat)) == rgb[labels[window]], window
    shot = screenshot_path("scene-map.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")

    window, lon, lat = window_centres(scene_maps["tiled"])[4]
    box, (x, y) = page.locator("#map").bounding_box(), screen_point(page, lon, lat)
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_selector("#window-info .bars")
    assert f"window {window} " in page.inner_text("#window-info")
    assert page.inner_text("#window-info .label") == MAP_CLASSES[labels[window]]
    assert page.locator("#window-info .bar").count() == len(MAP_CLASSES)
    assert page.locator("#map path.window-mark").count() == 1
    page.fill("#label-class", "meadow")
    page.click("#label-window")
    page.wait_for_function("document.querySelector('#label-counts').textContent.includes('meadow 1')")
    page.click("#remap-button")  # the adapted head of the previous test maps the scene again
    page.wait_for_function("document.querySelectorAll('#map-select option').length === 2")
    page.wait_for_function("document.querySelector('#map img.scene-overlay')?.complete")
    assert page.input_value("#map-select").startswith("tiled-adapted-")
    assert [t.split(" (")[0] for t in page.locator("#legend li").all_inner_texts()] == ["ocean", "snow"]
    shot = screenshot_path("scene-map-adapted.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def test_a_basemap_draws_its_tiles_under_the_countries(page, server_url, tiny_model):
    """--basemap: tiles from the given server (here the first app's own files), credited in the corner."""
    from msclip.app import create_app

    tiles = f"{server_url}/static/vendor/leaflet/images/layers.png?z={{z}}&x={{x}}&y={{y}}"
    with serving(create_app(tiny_model, basemap=tiles)) as url:
        other = page.context.browser.new_page(viewport={"width": 1280, "height": 900})
        other.goto(url)
        other.wait_for_selector("body[data-ready=true]")
        other.click("button[data-tab=search]")
        other.wait_for_function("document.querySelectorAll('#map img.leaflet-tile-loaded').length > 0")
        assert "tiles: 127.0.0.1" in other.inner_text("#map .leaflet-control-attribution")
        shot = screenshot_path("basemap.png")
        other.screenshot(path=str(shot))
        print(f"screenshot: {shot}")
        other.close()
