// The overview: the site's headline figures (people first, observations below) and one live tile per camera.
import {
  cameraAge, connectLive, count, grade, gradeWord, initialData, refreshImage, setGrade, showRatio, showResult, showStatus,
  showUnmasked,
} from "./common.js";

const tiles = document.getElementById("tiles");
const template = document.getElementById("tile-template");
const byCamera = new Map();

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
  const tile = byCamera.get(event.camera);
  if (!tile) return;
  tile.classList.remove("flash");
  void tile.offsetWidth; // restart the animation
  tile.classList.add("flash");
}

renderOverview(initialData());
connectLive(["overview", "results", "violations"], {
  overview: renderOverview,
  results: onResults,
  violation: onViolation,
});
