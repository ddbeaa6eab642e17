// msclip web app: plain JavaScript, no build step, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;
let session = null; // this page's labels live on the server under this id
let footprints = [];
let lastHits = [];
let lastClasses = []; // the classes of the classify cards shown

function element(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

// POST a form; the server answers JSON, with {"error": "..."} for anything the user can fix.
async function post(url, form) {
  const response = await fetch(url, { method: "POST", body: form });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`the server answered ${response.status} without a message`);
  }
  if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
  return body;
}

function showErrors(list, messages) {
  list.replaceChildren(...messages.map((m) => element("li", {}, m)));
}

// ---- tabs -------------------------------------------------------------------------------------------------
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const other of document.querySelectorAll(".tab")) other.classList.toggle("active", other === tab);
    for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== tab.dataset.tab;
    const slot = document.querySelector(`#${tab.dataset.tab} .map-slot`);
    if (slot && map) { // one map, shown in the Search and Maps tabs
      slot.append($("map"));
      map.invalidateSize();
      showLayersOf(tab.dataset.tab);
      if (pendingView[tab.dataset.tab]) map.fitBounds(...pendingView[tab.dataset.tab]);
      delete pendingView[tab.dataset.tab];
    }
  });
}

// ---- start-up: what the server offers -----------------------------------------------------------------------
async function start() {
  info = await (await fetch("/api/info")).json();
  session = (await post("/api/session", new FormData())).session;
  $("model-info").textContent = `model ${info.model} · bands ${info.bands.join(" ")}` +
    (info.index ? ` · index of ${info.index.count} images` : " · no index");
  for (const name of Object.keys(info.presets)) $("preset").append(element("option", { value: name }, name));
  for (const name of info.templates) $("templates").append(element("option", { value: name }, name));
  for (const name of info.layouts) $("layout").append(element("option", { value: name }, name));
  const examples = $("examples");
  if (info.examples.length) examples.append(element("div", {}, "…or pick examples:"));
  for (const name of info.examples) {
    const label = element("label");
    label.append(element("input", { type: "checkbox", name: "examples", value: name }), name);
    examples.append(label);
  }
  if (info.head) { // a few-shot head fixes the classes
    $("classes").value = info.head.classes.join("\n");
    $("classes").readOnly = true;
    $("preset").disabled = true;
  }
  if (info.index) {
    footprints = (await (await fetch("/api/footprints")).json()).features;
  } else {
    $("search-status").textContent = "No index loaded: start the app with msclip app --index DIR to search.";
    $("search-button").disabled = true;
  }
  await startMap();
  await startMaps();
  document.body.dataset.ready = "true";
}

$("preset").addEventListener("change", (event) => {
  if (event.target.value) $("classes").value = info.presets[event.target.value].join("\n");
});

// ---- classify -----------------------------------------------------------------------------------------------
$("classify-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  if (!$("files").files.length) form.delete("files"); // an empty file input still sends a nameless part
  form.set("session", session);
  const status = $("classify-status");
  const button = $("classify-button");
  showErrors($("classify-errors"), []);
  $("classify-results").replaceChildren();
  $("classify-csv").hidden = true;
  button.disabled = true;
  status.textContent = "Classifying…";
  try {
    const answer = await post("/api/classify", form);
    showErrors($("classify-errors"), answer.errors.map((e) => e.message));
    lastClasses = answer.classes;
    $("classify-results").replaceChildren(...answer.results.map((r) => resultCard(r, answer.classes)));
    knownClasses();
    status.textContent = `${answer.results.length} image(s) classified` +
      (answer.errors.length ? `, ${answer.errors.length} not usable` : "");
    if (answer.csv) {
      $("classify-csv").href = answer.csv;
      $("classify-csv").hidden = false;
    }
  } catch (error) {
    status.textContent = "";
    showErrors($("classify-errors"), [error.message]);
  } finally {
    button.disabled = false;
  }
});

function picture(src, caption) {
  const figure = element("figure");
  figure.append(src ? element("img", { src, alt: caption }) : element("div", { class: "missing" }, "bands missing"));
  figure.append(element("figcaption", {}, caption));
  return figure;
}

// A tick box to label an item the server knows by its sample id, and the class it was given.
function tickBox(sample) {
  const tick = element("label", { class: "tick" });
  tick.append(element("input", { type: "checkbox", "data-sample": sample }), "tick");
  tick.append(element("span", { class: "given", "data-given": sample }));
  return tick;
}

function probabilityBars(classes, probabilities) {
  const bars = element("div", { class: "bars" });
  const order = classes.map((name, i) => [name, probabilities[i]]).sort((a, b) => b[1] - a[1]);
  order.forEach(([name, p], i) => {
    const bar = element("div", { class: i === 0 ? "bar top" : "bar", title: `${name}: ${p.toFixed(4)}` });
    const track = element("div", { class: "track" });
    track.append(element("div", { class: "fill", style: `width: ${(100 * p).toFixed(1)}%` }));
    bar.append(element("span", { class: "name" }, name), track, element("span", { class: "value" }, `${(100 * p).toFixed(1)}%`));
    bars.append(bar);
  });
  return bars;
}

function resultCard(result, classes) {
  const card = element("article", { class: "card result", "data-card": result.sample });
  const title = element("h3", {}, `${result.image} → `);
  title.append(element("span", { class: "label" }, result.label));
  card.append(title, tickBox(result.sample));
  const views = element("div", { class: "views" });
  views.append(picture(result.rgb, "true colour (B04 B03 B02)"));
  views.append(picture(result.false_colour, "false colour (B08 B04 B03)"));
  views.append(probabilityBars(classes, result.probabilities));
  card.append(views);
  if (result.filled_fraction > 0) {
    card.append(element("div", { class: "muted" }, `${(100 * result.filled_fraction).toFixed(1)}% nodata pixels filled`));
  }
  return card;
}

// ---- search -------------------------------------------------------------------------------------------------
function bboxValue() {
  const values = ["minlon", "minlat", "maxlon", "maxlat"].map((id) => $(id).value.trim());
  return values.every((v) => v !== "") ? values.join(",") : "";
}

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const image = $("query-image").files[0];
  if (image) form.append("image", image);
  form.set("bbox", bboxValue());
  form.set("session", session);
  const status = $("search-status");
  const button = $("search-button");
  showErrors($("search-errors"), []);
  button.disabled = true;
  status.textContent = "Searching…";
  try {
    const answer = await post("/api/search", form);
    lastHits = answer.hits;
    $("search-results").replaceChildren(...answer.hits.map(hitCard));
    status.textContent = `${answer.hits.length} hit(s) for “${answer.query}”`;
    $("search-csv").href = answer.csv;
    $("search-csv").hidden = false;
  } catch (error) {
    lastHits = [];
    $("search-results").replaceChildren();
    status.textContent = "";
    showErrors($("search-errors"), [error.message]);
  } finally {
    button.disabled = false;
    drawHits();
  }
});

function hitCard(hit) {
  const card = element("article", { class: "card hit", "data-id": hit.id, "data-card": hit.sample });
  const img = element("img", { src: hit.thumbnail, alt: hit.image, loading: "lazy" });
  img.addEventListener("error", () => img.replaceWith(element("div", { class: "missing" }, "no preview")));
  card.append(img);
  card.append(element("div", {}, `#${hit.rank} · ${hit.score.toFixed(3)}`));
  card.append(element("div", { class: "muted" }, hit.image));
  if (hit.datetime) card.append(element("div", { class: "muted" }, hit.datetime.slice(0, 10)));
  card.append(element("div", { class: "label adapted" }), tickBox(hit.sample));
  card.addEventListener("mouseenter", () => highlight(hit.id, true));
  card.addEventListener("mouseleave", () => highlight(hit.id, false));
  return card;
}

function highlight(id, on) {
  for (const node of document.querySelectorAll(`[data-id="${id}"]`)) node.classList.toggle("highlight", on);
}

// ---- the map: Leaflet over the bundled Natural Earth countries (and a tile layer with --basemap) -------------
let map = null;
const layers = {};
const LAND = "#f4f1e8";
const BORDER = "#9aa5b1";
const pendingView = {}; // tab -> fitBounds arguments for when it is next shown (a hidden map has no size)

// Search draws footprints, hits and the box; Maps draws the scene map and the clicked window.
function showLayersOf(tab) {
  const onMaps = tab === "maps";
  for (const layer of [layers.footprints, layers.hits, layers.box]) onMaps ? layer.remove() : layer.addTo(map);
  for (const layer of [overlay, layers.scene]) if (layer) onMaps ? layer.addTo(map) : layer.remove();
}

function showOnMap(tab, bounds, maxZoom) {
  const view = [bounds, { padding: [20, 20], maxZoom, animate: false }];
  if ($(tab).hidden) pendingView[tab] = view;
  else map.fitBounds(...view);
}
let drawing = false;
let dragStart = null;

async function startMap() {
  map = L.map("map", { boxZoom: false, worldCopyJump: true, minZoom: 1, zoomSnap: 0.5 }).setView([20, 0], 2);
  map.createPane("countries").style.zIndex = 250; // above tiles, below footprints and overlays
  if (info.basemap) {
    L.tileLayer(info.basemap.url, { attribution: info.basemap.attribution, maxZoom: 19 }).addTo(map);
  }
  const world = await (await fetch("/static/vendor/world-atlas/countries-50m.json")).json();
  const countries = topojson.feature(world, world.objects.countries);
  for (const feature of countries.features) feature.geometry = unwrapGeometry(feature.geometry);
  layers.countries = L.geoJSON(countries, { // on a canvas: thousands of coastline vertices redraw fast
    interactive: false, renderer: L.canvas({ pane: "countries" }),
    style: { fillColor: LAND, fillOpacity: info.basemap ? 0 : 1, color: BORDER, weight: 0.6 },
  }).addTo(map);
  map.attributionControl.addAttribution("countries: Natural Earth");
  layers.footprints = L.featureGroup().addTo(map);
  layers.hits = L.featureGroup().addTo(map);
  layers.box = L.featureGroup().addTo(map);
  layers.scene = L.featureGroup();
  for (const feature of footprints) {
    addShape(layers.footprints, feature.geometry, "footprint", feature.properties.image);
  }
  if (footprints.length) showOnMap("search", layers.footprints.getBounds(), 8);
  map.on("mousedown", startBox);
  map.on("mousemove", moveBox);
  map.on("mouseup", endBox);
  map.on("click", clickWindow);
}

// Natural Earth rings that cross the antimeridian jump from +180 to -180 degrees, which a flat map draws as a
// line across the world: unwrap them into continuous longitudes; a ring around the South Pole (Antarctica)
// is then closed along the pole.
function unwrapRing(ring) {
  const out = [ring[0]];
  for (const [lon, lat] of ring.slice(1)) {
    const previous = out[out.length - 1][0];
    out.push([lon + 360 * Math.round((previous - lon) / 360), lat]);
  }
  const [first, last] = [out[0][0], out[out.length - 1][0]];
  if (Math.abs(first - last) > 180) out.push([last, -90], [first, -90], out[0]);
  return out;
}

function unwrapGeometry(geometry) {
  if (geometry.type === "Polygon") return { ...geometry, coordinates: geometry.coordinates.map(unwrapRing) };
  if (geometry.type === "MultiPolygon") {
    return { ...geometry, coordinates: geometry.coordinates.map((polygon) => polygon.map(unwrapRing)) };
  }
  return geometry;
}

// A footprint as its polygon plus a dot, so that a 2 km chip stays visible on a continental view.
function addShape(group, geometry, cls, title) {
  if (!geometry) return null;
  const shape = L.geoJSON(geometry, { style: { className: cls } });
  const dot = L.circleMarker(shape.getBounds().getCenter(), { radius: cls === "hit-mark" ? 6 : 4, className: `${cls}-dot` });
  const both = L.featureGroup([shape, dot]).bindTooltip(title);
  group.addLayer(both);
  return both;
}

function drawHits() {
  layers.hits.clearLayers();
  for (const hit of lastHits) {
    const mark = addShape(layers.hits, hit.geometry, "hit-mark", `#${hit.rank} ${hit.image} (${hit.score.toFixed(3)})`);
    if (!mark) continue;
    mark.on("mouseover", () => highlight(hit.id, true));
    mark.on("mouseout", () => highlight(hit.id, false));
    mark.eachLayer((layer) => layer.eachLayer?.((part) => part.getElement?.()?.setAttribute("data-id", hit.id)));
    L.marker(mark.getBounds().getCenter(), {
      icon: L.divIcon({ className: "hit-label", html: String(hit.rank), iconSize: [20, 14], iconAnchor: [-6, 16] }),
      interactive: false,
    }).addTo(layers.hits);
  }
  if (lastHits.length) showOnMap("search", layers.hits.getBounds(), 8);
}

function drawBox() {
  layers.box.clearLayers();
  const box = bboxValue();
  if (!box) return;
  const [w, s, e, n] = box.split(",").map(Number);
  L.rectangle([[s, w], [n, e]], { className: "box", interactive: false }).addTo(layers.box);
}

// Drag a box with "Draw box on map" on, or with Shift held: it becomes the search's bounding box.
function startBox(event) {
  if (!drawing && !event.originalEvent.shiftKey) return;
  map.dragging.disable();
  dragStart = event.latlng;
}
function moveBox(event) {
  if (!dragStart) return;
  setBox(dragStart, event.latlng);
  drawBox();
}
function endBox() {
  if (!dragStart) return;
  dragStart = null;
  map.dragging.enable();
  if (drawing) $("draw-box").click();
}
document.addEventListener("keydown", (event) => { if (event.key === "Shift" && map) map.dragging.disable(); });
document.addEventListener("keyup", (event) => { if (event.key === "Shift" && map && !drawing) map.dragging.enable(); });

$("draw-box").addEventListener("click", () => {
  drawing = !drawing;
  $("map").classList.toggle("drawing", drawing);
  if (drawing) map.dragging.disable(); else map.dragging.enable();
  $("draw-box").textContent = drawing ? "Drag on the map…" : "Draw box on map";
});
$("clear-box").addEventListener("click", () => {
  for (const id of ["minlon", "minlat", "maxlon", "maxlat"]) $(id).value = "";
  drawBox();
});

function setBox(a, b) {
  const round = (v) => +v.toFixed(5);
  const lon1 = L.Util.wrapNum(a.lng, [-180, 180], true);
  const lon2 = lon1 + (b.lng - a.lng);
  $("minlon").value = round(Math.max(-180, Math.min(lon1, lon2)));
  $("maxlon").value = round(Math.min(180, Math.max(lon1, lon2)));
  $("minlat").value = round(Math.max(-90, Math.min(a.lat, b.lat)));
  $("maxlat").value = round(Math.min(90, Math.max(a.lat, b.lat)));
}
for (const id of ["minlon", "minlat", "maxlon", "maxlat"]) $(id).addEventListener("change", drawBox);

// ---- scene maps -------------------------------------------------------------------------------------------
let sceneMaps = [];
let current = null; // the scene map shown
let overlay = null;
let clickedWindow = null;

async function startMaps() {
  if (!info.maps) {
    $("maps-status").textContent = "No maps loaded: start the app with msclip app --maps DIR (outputs of msclip map).";
    return;
  }
  sceneMaps = (await (await fetch("/api/maps")).json()).maps;
  listMaps();
  showMap(sceneMaps[0].id);
}

function listMaps() {
  $("map-select").replaceChildren(...sceneMaps.map((m) => element("option", { value: m.id }, m.name)));
}

function showMap(id) {
  current = sceneMaps.find((m) => m.id === id);
  $("map-select").value = id;
  if (overlay) overlay.remove();
  layers.scene.clearLayers();
  const [w, s, e, n] = current.bounds;
  overlay = L.imageOverlay(current.overlay, [[s, w], [n, e]], {
    opacity: +$("opacity").value, className: "scene-overlay", alt: current.name,
  });
  if (!$("maps").hidden) overlay.addTo(map);
  $("legend").replaceChildren(...current.classes.map((name, i) => {
    const item = element("li");
    item.append(element("span", { class: "swatch", style: `background: ${current.colours[i]}` }),
      `${name} (${current.windows[name]} windows)`);
    return item;
  }));
  $("window-info").replaceChildren("Click the map to see a window's class probabilities.");
  showOnMap("maps", L.latLngBounds([[s, w], [n, e]]), 16);
  knownClasses();
}

$("map-select").addEventListener("change", (event) => showMap(event.target.value));
$("opacity").addEventListener("input", (event) => overlay && overlay.setOpacity(+event.target.value));

async function clickWindow(event) {
  if (!current || $("maps").hidden || drawing || event.originalEvent.shiftKey) return;
  const { lat, lng } = event.latlng;
  const lon = L.Util.wrapNum(lng, [-180, 180], true);
  const response = await fetch(`/api/maps/${current.id}/at?lon=${lon}&lat=${lat}`);
  const answer = await response.json();
  layers.scene.clearLayers();
  if (!response.ok) {
    clickedWindow = null;
    $("window-info").replaceChildren(answer.error);
    return;
  }
  clickedWindow = answer;
  if (answer.geometry) L.geoJSON(answer.geometry, { style: { className: "window-mark" }, interactive: false }).addTo(layers.scene);
  const label = element("button", { type: "button", id: "label-window" }, "Label this window");
  label.addEventListener("click", () => labelItems({ map: current.id, window: answer.window }));
  const title = element("div", {}, `window ${answer.window} (row ${answer.row}, col ${answer.col}) → `);
  title.append(element("span", { class: "label" }, answer.label));
  $("window-info").replaceChildren(title, probabilityBars(current.classes, answer.probabilities), label);
}

$("remap-button").addEventListener("click", async () => {
  const form = new FormData();
  form.set("session", session);
  $("remap-button").disabled = true;
  $("maps-status").textContent = `Mapping ${current.name} with the adapted head…`;
  showErrors($("maps-errors"), []);
  try {
    const made = await post(`/api/maps/${current.id}/adapted`, form);
    sceneMaps.push(made);
    listMaps();
    showMap(made.id);
    $("maps-status").textContent = `${made.name}: mapped with the adapted head`;
  } catch (error) {
    $("maps-status").textContent = "";
    showErrors($("maps-errors"), [error.message]);
  } finally {
    $("remap-button").disabled = false;
  }
});

// ---- labels and adaptation ----------------------------------------------------------------------------------
function knownClasses() {
  const names = new Set([...lastClasses, ...(current ? current.classes : [])]);
  $("known-classes").replaceChildren(...[...names].map((n) => element("option", { value: n })));
}

function ticked() {
  return [...document.querySelectorAll("input[data-sample]:checked")].map((box) => box.dataset.sample);
}

async function labelItems(extra = {}, label = $("label-class").value.trim()) {
  showErrors($("label-errors"), []);
  const form = new FormData();
  form.set("session", session);
  form.set("label", label);
  const samples = extra.map ? [] : ticked();
  for (const sample of samples) form.append("samples", sample);
  for (const [key, value] of Object.entries(extra)) form.set(key, value);
  try {
    if (!label && extra.map) throw new Error("type the class of the window first");
    if (!label && samples.length && !extra.unlabel) throw new Error("type the class of the ticked items first");
    const answer = await post("/api/labels", form);
    showLabels(answer);
    for (const box of document.querySelectorAll("input[data-sample]:checked")) box.checked = false;
  } catch (error) {
    showErrors($("label-errors"), [error.message]);
  }
}

function showLabels(answer) {
  const counts = Object.entries(answer.counts);
  $("label-counts").textContent = counts.length
    ? `labelled: ${counts.map(([name, n]) => `${name} ${n}`).join(" · ")}`
    : "no labels yet";
  $("adapt-button").disabled = counts.length < 2;
  const given = Object.fromEntries(answer.labels.map((l) => [l.sample, l.label]));
  for (const span of document.querySelectorAll("[data-given]")) span.textContent = given[span.dataset.given] || "";
}

$("label-button").addEventListener("click", () => labelItems());
$("unlabel-button").addEventListener("click", () => labelItems({ unlabel: "1" }, ""));

$("adapt-button").addEventListener("click", async () => {
  const form = new FormData();
  form.set("session", session);
  $("adapt-button").disabled = true;
  $("adapt-status").textContent = "Adapting…";
  showErrors($("label-errors"), []);
  try {
    const answer = await post("/api/adapt", form);
    $("adapt-status").textContent = `${answer.method} head on ${answer.classes.length} classes: ${answer.accuracy_note}`;
    $("head-link").href = answer.head;
    $("head-link").hidden = false;
    $("adapted-choice").hidden = false;
    $("adapted").checked = true;
    $("remap-button").disabled = !current;
    showPredictions(answer);
  } catch (error) {
    $("adapt-status").textContent = "";
    showErrors($("label-errors"), [error.message]);
  } finally {
    $("adapt-button").disabled = false;
  }
});

// Re-classify what the page shows with the adapted head (the server keeps every item's embedding).
function showPredictions(answer) {
  for (const card of document.querySelectorAll("[data-card]")) {
    const prediction = answer.predictions[card.dataset.card];
    if (!prediction) continue;
    if (card.classList.contains("result")) {
      card.querySelector("h3 .label").textContent = prediction.label;
      card.querySelector(".bars").replaceWith(probabilityBars(answer.classes, prediction.probabilities));
    } else {
      const best = Math.max(...prediction.probabilities);
      card.querySelector(".adapted").textContent = `→ ${prediction.label} (${(100 * best).toFixed(0)}%)`;
    }
  }
}

start().catch((error) => showErrors($("classify-errors"), [`cannot reach the server: ${error.message}`]));
