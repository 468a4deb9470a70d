// The camera page: live figures, the compliance chart with a selectable window, recent violations.
import { drawChart } from "./chart.js";
import {
  cameraAge, clockTime, connectLive, count, initialData, refreshImage, showRatio, showResult, showStatus,
} from "./common.js";

const head = document.querySelector(".camera-head");
const cameraId = head.dataset.camera;
const base = `/api/cameras/${encodeURIComponent(cameraId)}`;
const canvas = document.getElementById("chart");
const tip = document.getElementById("chart-tip");
const eventsBox = document.getElementById("events");
const frameImg = document.querySelector("[data-frame]");
const frameCaption = document.querySelector("[data-noframe]");
const WINDOWS = ["15m", "1h", "6h", "24h", "7d"];
const REFRESH_MS = { "15m": 5000, "1h": 5000, "6h": 15000, "24h": 60000, "7d": 300000 };

let chosen = WINDOWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "1h";
let chart = null;
let series = null;
let lastFetch = 0;

function renderHead(cam) {
  showStatus(head.querySelector("[data-status]"), cam);
  head.querySelector("[data-age]").textContent = cameraAge(cam);
  frameCaption.textContent = cam.quiet ? "quiet: nothing moved lately" : "no recent frame";
  for (const [w, ratio] of Object.entries(cam.compliance)) showRatio(head.querySelector(`[data-window="${w}"]`), ratio);
  for (const [name, n] of Object.entries(cam.totals)) document.querySelector(`[data-total="${name}"]`).textContent = count(n);
}

async function loadChart() {
  lastFetch = Date.now();
  const response = await fetch(`${base}/compliance?window=${chosen}`);
  if (!response.ok) return;
  series = await response.json();
  const minutes = series.step_s / 60;
  document.querySelector("[data-chart-note]").textContent =
    `${minutes >= 60 ? `${minutes / 60} h` : `${minutes} min`} steps, by capture time`;
  chart = drawChart(canvas, series);
}

function choose(w) {
  chosen = w;
  history.replaceState(null, "", `#${w}`);
  for (const b of document.querySelectorAll("[data-pick]")) b.setAttribute("aria-pressed", String(b.dataset.pick === w));
  loadChart();
}

function eventCard(ev) {
  const card = document.createElement("a");
  card.className = "event";
  card.href = ev.snapshot_url;
  card.dataset.event = ev.id;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = `violation at ${clockTime(ev.ts, true)}`;
  img.src = ev.snapshot_url;
  const text = document.createElement("p");
  text.innerHTML = `<b></b> · <span></span>`;
  text.querySelector("b").textContent = `no mask ${Math.round(ev.score * 100)}%`;
  text.querySelector("span").textContent = new Date(ev.ts).toLocaleString();
  card.append(img, text);
  return card;
}

function addEvents(events, atTop) {
  for (const ev of events) {
    if (eventsBox.querySelector(`[data-event="${CSS.escape(ev.id)}"]`)) continue;
    const card = eventCard(ev);
    if (atTop) eventsBox.prepend(card);
    else eventsBox.append(card);
  }
  document.getElementById("no-events").hidden = eventsBox.children.length > 0;
}

canvas.addEventListener("mousemove", (e) => {
  if (!chart || !series.points.length) return;
  const rect = canvas.getBoundingClientRect();
  const i = chart.indexAt(e.clientX - rect.left);
  chart.frame(i);
  tip.hidden = false;
  tip.textContent = chart.describe(i);
  tip.style.left = `${Math.min(e.clientX - rect.left + 12, rect.width - tip.offsetWidth - 4)}px`;
  tip.style.top = "4px";
});
canvas.addEventListener("mouseleave", () => {
  tip.hidden = true;
  if (chart) chart.frame();
});
new ResizeObserver(() => series && (chart = drawChart(canvas, series))).observe(canvas);
for (const b of document.querySelectorAll("[data-pick]")) b.addEventListener("click", () => choose(b.dataset.pick));

/** The camera's frames stream: lag, pending frames and the worker holding it (from the system figures). */
function renderQueue(q) {
  for (const name of ["lag", "pending"]) document.querySelector(`[data-queue="${name}"]`).textContent = count(q[name]);
  document.querySelector('[data-queue="worker"]').textContent = q.worker || "none";
}

renderHead(initialData());
if (initialData().queue) renderQueue(initialData().queue);
addEvents(initialData("initial-events"), false);
refreshImage(frameImg, frameCaption, `${base}/latest.jpg?v=${Date.now()}`);
choose(chosen);

connectLive(["overview", "results", "violations", "system"], {
  overview: (ov) => {
    const cam = ov.cameras.find((c) => c.id === cameraId);
    if (cam) renderHead(cam);
  },
  results: (newest) => {
    const r = newest[cameraId];
    if (!r) return;
    showResult(document.querySelector("[data-last]"), r);
    refreshImage(frameImg, frameCaption, `${base}/latest.jpg?v=${r.seq}`);
    if (Date.now() - lastFetch > REFRESH_MS[chosen]) loadChart();
  },
  violation: (ev) => ev.camera === cameraId && addEvents([ev], true),
  system: (sys) => {
    const flow = sys.cameras.find((c) => c.id === cameraId);
    if (flow) renderQueue(flow);
  },
});
