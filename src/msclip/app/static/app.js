// msclip web app: plain JavaScript, no build step, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let info = null;
let footprints = [];
let lastHits = [];

function element(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function svgElement(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
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
  });
}

// ---- start-up: what the server offers -----------------------------------------------------------------------
async function start() {
  info = await (await fetch("/api/info")).json();
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
  drawMap();
}

$("preset").addEventListener("change", (event) => {
  if (event.target.value) $("classes").value = info.presets[event.target.value].join("\n");
});

// ---- classify -----------------------------------------------------------------------------------------------
$("classify-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  if (!$("files").files.length) form.delete("files"); // an empty file input still sends a nameless part
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
    $("classify-results").replaceChildren(...answer.results.map((r) => resultCard(r, answer.classes)));
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

function resultCard(result, classes) {
  const card = element("article", { class: "card result" });
  const title = element("h3", {}, `${result.image} → `);
  title.append(element("span", { class: "label" }, result.label));
  card.append(title);
  const views = element("div", { class: "views" });
  views.append(picture(result.rgb, "true colour (B04 B03 B02)"));
  views.append(picture(result.false_colour, "false colour (B08 B04 B03)"));
  const bars = element("div", { class: "bars" });
  const order = classes.map((name, i) => [name, result.probabilities[i]]).sort((a, b) => b[1] - a[1]);
  order.forEach(([name, p], i) => {
    const bar = element("div", { class: i === 0 ? "bar top" : "bar", title: `${name}: ${p.toFixed(4)}` });
    const track = element("div", { class: "track" });
    track.append(element("div", { class: "fill", style: `width: ${(100 * p).toFixed(1)}%` }));
    bar.append(element("span", { class: "name" }, name), track, element("span", { class: "value" }, `${(100 * p).toFixed(1)}%`));
    bars.append(bar);
  });
  views.append(bars);
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
    drawMap();
  }
});

function hitCard(hit) {
  const card = element("article", { class: "card hit", "data-id": hit.id });
  const img = element("img", { src: hit.thumbnail, alt: hit.image, loading: "lazy" });
  img.addEventListener("error", () => img.replaceWith(element("div", { class: "missing" }, "no preview")));
  card.append(img);
  card.append(element("div", {}, `#${hit.rank} · ${hit.score.toFixed(3)}`));
  card.append(element("div", { class: "muted" }, hit.image));
  if (hit.datetime) card.append(element("div", { class: "muted" }, hit.datetime.slice(0, 10)));
  card.addEventListener("mouseenter", () => highlight(hit.id, true));
  card.addEventListener("mouseleave", () => highlight(hit.id, false));
  return card;
}

function highlight(id, on) {
  for (const node of document.querySelectorAll(`[data-id="${id}"]`)) node.classList.toggle("highlight", on);
}

// ---- map: footprints in longitude/latitude (equirectangular, no tiles needed) -----------------------------------
const MAP_W = 800;
const MAP_H = 420;
let view = null; // {west, south, east, north}
let drawing = false;
let dragStart = null;

function rings(geometry) {
  if (!geometry) return [];
  if (geometry.type === "Polygon") return [geometry.coordinates[0]];
  if (geometry.type === "MultiPolygon") return geometry.coordinates.map((p) => p[0]);
  if (geometry.type === "Point") return [[geometry.coordinates]];
  return [];
}

function extentOf(geometries) {
  let [w, s, e, n] = [180, 90, -180, -90];
  for (const ring of geometries.flatMap(rings)) {
    for (const [x, y] of ring) { w = Math.min(w, x); e = Math.max(e, x); s = Math.min(s, y); n = Math.max(n, y); }
  }
  if (w > e) return { west: -180, south: -60, east: 180, north: 80 };
  const pad = Math.max(e - w, n - s) * 0.15 + 0.05;
  return fitAspect({ west: w - pad, south: s - pad, east: e + pad, north: n + pad });
}

// Widen the view so that a degree of longitude is cos(lat) of a degree of latitude, as on the ground.
function fitAspect(box) {
  const mid = ((box.south + box.north) / 2) * Math.PI / 180;
  const k = Math.max(Math.cos(mid), 0.2);
  const width = (box.east - box.west) * k;
  const height = box.north - box.south;
  const target = MAP_W / MAP_H;
  if (width / height < target) {
    const extra = (height * target / k - (box.east - box.west)) / 2;
    return { ...box, west: box.west - extra, east: box.east + extra };
  }
  const extra = (width / target - height) / 2;
  return { ...box, south: box.south - extra, north: box.north + extra };
}

const project = ([lon, lat]) => [
  ((lon - view.west) / (view.east - view.west)) * MAP_W,
  ((view.north - lat) / (view.north - view.south)) * MAP_H,
];
const unproject = (x, y) => [
  view.west + (x / MAP_W) * (view.east - view.west),
  view.north - (y / MAP_H) * (view.north - view.south),
];

function niceStep(span) {
  const raw = span / 6;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw);
}

function drawMap() {
  const map = $("map");
  view = view || extentOf(footprints.map((f) => f.geometry));
  map.replaceChildren();
  const step = niceStep(view.east - view.west);
  for (let lon = Math.ceil(view.west / step) * step; lon <= view.east; lon += step) {
    const [x] = project([lon, 0]);
    map.append(svgElement("line", { class: "grid", x1: x, y1: 0, x2: x, y2: MAP_H }));
    // labels on the right half end at their line, so that the last one stays inside the map
    const right = x > MAP_W / 2;
    const label = svgElement("text", {
      class: "grid-label", x: right ? x - 2 : x + 2, y: MAP_H - 4, "text-anchor": right ? "end" : "start",
    });
    label.textContent = `${+lon.toFixed(4)}°`;
    map.append(label);
  }
  for (let lat = Math.ceil(view.south / step) * step; lat <= view.north; lat += step) {
    const [, y] = project([0, lat]);
    map.append(svgElement("line", { class: "grid", x1: 0, y1: y, x2: MAP_W, y2: y }));
    const label = svgElement("text", { class: "grid-label", x: 2, y: y < 14 ? y + 11 : y - 2 }); // below a top line
    label.textContent = `${+lat.toFixed(4)}°`;
    map.append(label);
  }
  for (const feature of footprints) drawShape(map, feature.geometry, "footprint", feature.properties.image);
  for (const hit of lastHits) {
    const mark = drawShape(map, hit.geometry, "hit-mark", `#${hit.rank} ${hit.image} (${hit.score.toFixed(3)})`);
    if (!mark) continue;
    mark.setAttribute("data-id", hit.id);
    mark.addEventListener("mouseenter", () => highlight(hit.id, true));
    mark.addEventListener("mouseleave", () => highlight(hit.id, false));
    const [x, y] = mark.center;
    const label = svgElement("text", { class: "hit-label", x: x + 7, y: y - 5 });
    label.textContent = hit.rank;
    map.append(label);
  }
  const box = bboxValue();
  if (box) drawBox(map, box.split(",").map(Number));
}

// A footprint as a polygon, plus a dot so that a 2 km chip stays visible on a continental view.
function drawShape(map, geometry, cls, title) {
  const all = rings(geometry);
  if (!all.length) return null;
  const group = svgElement("g", { class: cls });
  const points = [];
  for (const ring of all) {
    const projected = ring.map(project);
    points.push(...projected);
    group.append(svgElement("polygon", { points: projected.map((p) => p.join(",")).join(" ") }));
  }
  const cx = points.reduce((a, p) => a + p[0], 0) / points.length;
  const cy = points.reduce((a, p) => a + p[1], 0) / points.length;
  group.append(svgElement("circle", { cx, cy, r: cls === "hit-mark" ? 6 : 4 }));
  const tip = svgElement("title");
  tip.textContent = title;
  group.append(tip);
  group.center = [cx, cy];
  map.append(group);
  return group;
}

function drawBox(map, [w, s, e, n]) {
  const [x1, y1] = project([w, n]);
  const [x2, y2] = project([e, s]);
  map.append(svgElement("rect", { class: "box", x: Math.min(x1, x2), y: Math.min(y1, y2),
    width: Math.abs(x2 - x1), height: Math.abs(y2 - y1) }));
}

function svgPoint(event) {
  const rect = $("map").getBoundingClientRect();
  return [((event.clientX - rect.left) / rect.width) * MAP_W, ((event.clientY - rect.top) / rect.height) * MAP_H];
}

$("draw-box").addEventListener("click", () => {
  drawing = !drawing;
  $("map").classList.toggle("drawing", drawing);
  $("draw-box").textContent = drawing ? "Drag on the map…" : "Draw box on map";
});
$("clear-box").addEventListener("click", () => {
  for (const id of ["minlon", "minlat", "maxlon", "maxlat"]) $(id).value = "";
  drawMap();
});
$("map").addEventListener("mousedown", (event) => {
  if (drawing) dragStart = unproject(...svgPoint(event));
});
$("map").addEventListener("mousemove", (event) => {
  if (!dragStart) return;
  setBox(dragStart, unproject(...svgPoint(event)));
  drawMap();
});
$("map").addEventListener("mouseup", () => {
  if (!dragStart) return;
  dragStart = null;
  $("draw-box").click();
});

function setBox([lon1, lat1], [lon2, lat2]) {
  const round = (v) => +v.toFixed(5);
  $("minlon").value = round(Math.max(-180, Math.min(lon1, lon2)));
  $("maxlon").value = round(Math.min(180, Math.max(lon1, lon2)));
  $("minlat").value = round(Math.max(-90, Math.min(lat1, lat2)));
  $("maxlat").value = round(Math.min(90, Math.max(lat1, lat2)));
}
for (const id of ["minlon", "minlat", "maxlon", "maxlat"]) $(id).addEventListener("change", drawMap);

start().catch((error) => showErrors($("classify-errors"), [`cannot reach the server: ${error.message}`]));
