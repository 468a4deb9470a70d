// The overview: compliance alerts and failing processes on top, the site's headline figures (people first,
// observations below), the site's recent violations, and one live tile per camera.
import {
  cameraAge, connectLive, count, grade, gradeWord, initialData, pct, refreshImage, setGrade, showRatio, showResult,
  showStatus, showUnmasked, timeElement, violationCard,
} from "./common.js";

const tiles = document.getElementById("tiles");
const template = document.getElementById("tile-template");
const strip = document.getElementById("violations");
const byCamera = new Map();
const STRIP_MAX = 12;

const cameraPath = (id) => `/cameras/${encodeURIComponent(id)}`;
const framePath = (id, token) => `/api/cameras/${encodeURIComponent(id)}/latest.jpg?v=${token}`;

function loadFrame(tile, id, token) {
  refreshImage(tile.querySelector("[data-frame]"), tile.querySelector("[data-noframe]"), framePath(id, token));
}

function makeTile(cam) {
  const tile = template.content.firstElementChild.cloneNode(true);
  tile.dataset.camera = cam.id;
  const link = tile.querySelector("[data-name]");
  link.textContent = cam.id;
  link.href = cameraPath(cam.id);
  tile.querySelector("[data-frame]").alt = `newest annotated frame of ${cam.id}`;
  loadFrame(tile, cam.id, Date.now());
  return tile;
}

function updateTile(tile, cam) {
  showStatus(tile.querySelector("[data-status]"), cam);
  tile.querySelector("[data-age]").textContent = cameraAge(cam);
  tile.querySelector("[data-noframe]").textContent = cam.quiet ? "quiet: nothing moved lately" : "no recent frame";
  for (const [w, ratio] of Object.entries(cam.people_compliance)) {
    showRatio(tile.querySelector(`[data-people-window="${w}"]`), ratio, "people");
  }
  setGrade(tile, grade(cam.people_compliance["15m"]));
  tile.querySelector('[data-people="15m"]').textContent = count(cam.people["15m"]);
  tile.querySelector('[data-people="24h"]').textContent = count(cam.people["24h"]);
  showUnmasked(tile.querySelector('[data-people-without="15m"]'), cam.people_without_mask["15m"]);
  showRatio(tile.querySelector('[data-window="15m"]'), cam.compliance["15m"]);
  tile.querySelector('[data-faces="15m"]').textContent = count(cam.faces["15m"]);
  tile.querySelector('[data-faces="24h"]').textContent = count(cam.faces["24h"]);
  tile.querySelector("[data-total]").textContent = count(cam.totals.faces);
  const error = tile.querySelector("[data-error]");
  error.hidden = !cam.error;
  error.textContent = cam.error || "";
}

function renderSite(site) {
  for (const [w, ratio] of Object.entries(site.people_compliance)) {
    showRatio(document.querySelector(`[data-site-people="${w}"]`), ratio, "people");
  }
  document.querySelector("[data-site-word]").textContent = gradeWord("people")[grade(site.people_compliance["15m"])];
  document.querySelector('[data-site-count="people"]').textContent = count(site.people["15m"]);
  showUnmasked(document.querySelector('[data-site-count="people_without_mask"]'), site.people_without_mask["15m"]);
  document.querySelector('[data-site-count="people-24h"]').textContent = count(site.people["24h"]);
  for (const [w, ratio] of Object.entries(site.compliance)) showRatio(document.querySelector(`[data-site="${w}"]`), ratio);
  document.querySelector('[data-site-faces="15m"]').textContent = count(site.faces["15m"]);
  document.querySelector('[data-site-faces="24h"]').textContent = count(site.faces["24h"]);
  document.querySelector("[data-site-online]").textContent = `${site.online} / ${site.cameras}`;
}

/** One banner per firing alert: which camera, the figure it fired on, since when. */
function renderAlerts(alerts) {
  const box = document.getElementById("alerts");
  box.replaceChildren(...alerts.map((a) => {
    const banner = document.createElement("div");
    banner.className = "banner banner-alert";
    banner.dataset.alert = a.camera;
    banner.setAttribute("role", "alert");
    const what = document.createElement("strong");
    what.textContent = "Alert";
    const cam = document.createElement("a");
    cam.href = `/cameras/${encodeURIComponent(a.camera)}`;
    cam.textContent = a.camera;
    const n = a.basis === "people" ? `${count(a.people)} ${a.people === 1 ? "person" : "people"}` : `${count(a.faces)} faces`;
    banner.append(what, cam, `: ${pct(a.compliance)} of ${n} wore a mask over ${Math.round(a.window_s / 60)} min, ` +
      `below ${pct(a.threshold)} · firing since `, timeElement(a.since));
    return banner;
  }));
  const firing = new Set(alerts.map((a) => a.camera));
  for (const [id, tile] of byCamera) {
    tile.classList.toggle("alerting", firing.has(id));
    tile.querySelector("[data-alert]").hidden = !firing.has(id);
  }
}

/** One banner per child process of `maskwatch up` that keeps failing, with its last error. */
function renderFailing(failing) {
  document.getElementById("failing").replaceChildren(...failing.map((p) => {
    const banner = document.createElement("div");
    banner.className = "banner banner-failing";
    banner.dataset.process = p.name;
    const what = document.createElement("strong");
    const restarts = `${p.restarts} restart${p.restarts === 1 ? "" : "s"}`;
    const detail = document.createElement("span");
    if (p.state === "unknown") {
      what.textContent = `${p.name}: no report`;
      detail.textContent = " — the `maskwatch up` running it stopped reporting; ";
    } else if (p.state === "stopped") {
      what.textContent = `${p.name} has stopped`;
      detail.append(` — given up on after ${restarts} (it failed each time it started), since `, timeElement(p.since),
        ". It needs fixing, then a restart of `maskwatch up`. ");
    } else {
      what.textContent = `${p.name} is failing`;
      detail.append(` — ${restarts}, failing since `, timeElement(p.since), ". ");
    }
    const link = document.createElement("a");
    link.href = "/system";
    link.textContent = "System";
    banner.append(what, detail, link);
    if (p.last_error) {
      const error = document.createElement("pre");
      error.className = "process-error";
      error.textContent = p.last_error;
      banner.append(error);
    }
    return banner;
  }));
}

function renderOverview(ov) {
  renderSite(ov.site);
  const seen = new Set();
  for (const cam of ov.cameras) {
    seen.add(cam.id);
    if (!byCamera.has(cam.id)) byCamera.set(cam.id, makeTile(cam));
    const tile = byCamera.get(cam.id);
    updateTile(tile, cam);
    tiles.appendChild(tile); // keeps the server's order (by id); moving an element in place is a no-op
  }
  for (const [id, tile] of byCamera) {
    if (!seen.has(id)) {
      tile.remove();
      byCamera.delete(id);
    }
  }
  document.getElementById("no-cameras").hidden = ov.cameras.length > 0;
  renderAlerts(ov.alerts);
  renderFailing(ov.failing);
}

/** Violations into the strip, newest first; `atTop` for new ones from the live stream. */
function addViolations(events, atTop) {
  for (const ev of events) {
    if (strip.querySelector(`[data-event="${CSS.escape(ev.id)}"]`)) continue;
    const card = violationCard(ev, true);
    if (atTop) strip.prepend(card);
    else strip.append(card);
  }
  while (strip.children.length > STRIP_MAX) strip.lastElementChild.remove();
  document.getElementById("no-violations").hidden = strip.children.length > 0;
}

function onResults(newest) {
  for (const [id, r] of Object.entries(newest)) {
    const tile = byCamera.get(id);
    if (!tile) continue;
    showResult(tile.querySelector("[data-last]"), r);
    loadFrame(tile, id, r.seq);
  }
}

function onViolation(event) {
  addViolations([event], true);
  const tile = byCamera.get(event.camera);
  if (!tile) return;
  tile.classList.remove("flash");
  void tile.offsetWidth; // restart the animation
  tile.classList.add("flash");
}

renderOverview(initialData());
addViolations(initialData("initial-events"), false);
connectLive(["overview", "results", "violations"], {
  overview: renderOverview,
  results: onResults,
  violation: onViolation,
});
