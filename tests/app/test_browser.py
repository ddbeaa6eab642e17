"""End to end in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright): upload a real
chip, classify it, see the result; search the small index and see hits on the map. Screenshots are kept."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def page(server_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        page.goto(server_url)
        page.wait_for_selector("#examples input[type=checkbox]")  # /api/info answered and was drawn
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


def test_search_the_index_and_see_hits_on_the_map(page):
    page.click("button[data-tab=search]")
    assert page.locator("#map .footprint").count() == 5  # every chip of the index drawn
    page.fill("#query", "a meandering frozen river")
    page.fill("#top_k", "3")
    page.click("#search-button")
    page.wait_for_selector(".hit")
    assert page.locator(".hit").count() == 3
    assert page.locator("#map .hit-mark").count() == 3
    page.wait_for_function(
        "[...document.querySelectorAll('.hit img')].every(i => i.complete && i.naturalWidth)"
    )
    assert "#1 ·" in page.inner_text("#search-results")
    shot = screenshot_path("search.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def test_every_grid_label_lies_inside_the_map(page):
    """Grid lines at the map's east edge (10 degrees) and just below its top (4 degrees) used to put their
    labels past the edge."""
    page.evaluate("view = {west: 0, south: -1.2, east: 10, north: 4.05}; drawMap()")
    try:
        boxes = page.eval_on_selector_all(
            "#map .grid-label",
            "labels => labels.map(l => { const b = l.getBBox(); return [l.textContent, b.x, b.y, b.width, b.height]; })",
        )
    finally:
        page.evaluate("view = null; drawMap()")  # the next test uses the map of the index
    assert {"10°", "4°"} <= {text for text, *_ in boxes}
    assert [t for t, x, y, w, h in boxes if x < 0 or y < 0 or x + w > 800 or y + h > 420] == []


def test_a_box_dragged_on_the_map_filters_the_search(page):
    first = page.inner_text(".hit .muted")  # the best hit of the previous test's query
    mark = page.locator("#map .hit-mark circle").first.bounding_box()
    x, y = mark["x"] + mark["width"] / 2, mark["y"] + mark["height"] / 2
    page.click("#draw-box")
    page.mouse.move(x - 20, y - 20)
    page.mouse.down()
    page.mouse.move(x + 20, y + 20, steps=4)
    page.mouse.up()
    assert page.locator("#map rect.box").count() == 1
    assert float(page.input_value("#minlon")) < float(page.input_value("#maxlon"))
    page.click("#search-button")
    page.wait_for_function("document.querySelectorAll('.hit').length === 1")
    assert page.inner_text(".hit .muted") == first
    shot = screenshot_path("search-box.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
