// The camera page: live figures (people first), the person timeline, the compliance chart with a selectable
// window, recent violations.
import { drawChart, settled } from "./chart.js";
import {
  cameraAge, connectLive, count, duration, grade, initialData, pct, refreshImage, setGrade, showRatio, showResult,
  showStatus, showUnmasked, timeElement, violationCard, zoomOnBox,
} from "./common.js";

const head = document.querySelector(".camera-head");
const cameraId = head.dataset.camera;
const base = `/api/cameras/${encodeURIComponent(cameraId)}`;
const canvas = document.getElementById("chart");
const tip = document.getElementById("chart-tip");
const eventsBox = document.getElementById("events");
const frameImg = document.querySelector("[data-frame]");
const frameCaption = document.querySelector("[data-noframe]");
const peopleBox = document.getElementById("people");
const morePeople = document.getElementById("people-more");
const PEOPLE_PAGE = 24;
const WINDOWS = ["15m", "1h", "6h", "24h", "7d"];
const REFRESH_MS = { "15m": 5000, "1h": 5000, "6h": 15000, "24h": 60000, "7d": 300000 };

let chosen = WINDOWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "1h";
let chart = null;
let series = null;
let lastFetch = 0;
let peopleCounted = null; // the camera's people total when the timeline was last read
let olderPeople = null; // cursor of the next, older page; null when all are shown
let pagedBack = false; // an older page was loaded: a refresh of the newest page keeps the cursor
const people = new Map(); // id -> person, every page loaded so far

function renderHead(cam) {
  showStatus(head.querySelector("[data-status]"), cam);
  head.querySelector("[data-age]").textContent = cameraAge(cam);
  const error = head.querySelector("[data-error]"); // why it is not sending: its config, or the producer's last failure
  error.hidden = !cam.error;
  error.textContent = cam.error || "";
  frameCaption.textContent = cam.quiet ? "quiet: nothing moved lately" : "no recent frame";
  for (const [w, ratio] of Object.entries(cam.people_compliance)) {
    showRatio(head.querySelector(`[data-people-window="${w}"]`), ratio, "people");
  }
  for (const w of ["15m", "24h"]) head.querySelector(`[data-people="${w}"]`).textContent = count(cam.people[w]);
  showUnmasked(head.querySelector('[data-people-without="15m"]'), cam.people_without_mask["15m"]);
  for (const [w, ratio] of Object.entries(cam.compliance)) showRatio(head.querySelector(`[data-window="${w}"]`), ratio);
  for (const [name, n] of Object.entries(cam.totals)) document.querySelector(`[data-total="${name}"]`).textContent = count(n);
  if (peopleCounted !== null && cam.totals.people !== peopleCounted) loadPeople(false);
  peopleCounted = cam.totals.people;
}

/** The best look of a person, or a placeholder saying why there is none. */
function personShot(p) {
  const box = document.createElement(p.snapshot_url ? "a" : "div");
  box.className = "shot";
  const placeholder = (text) => {
    const note = document.createElement("span");
    note.className = "noshot";
    note.textContent = text;
    return note;
  };
  if (!p.snapshot_url) {
    box.append(placeholder("no image: not stored by the privacy setting"));
    return box;
  }
  box.href = p.snapshot_url;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = `best look of person ${p.id}`;
  img.onerror = () => img.replaceWith(placeholder("image expired"));
  if (p.best_box) img.onload = () => zoomOnBox(img, p.best_box);
  img.src = p.snapshot_url;
  box.append(img);
  return box;
}

function personCard(p) {
  const card = document.createElement("article");
  card.className = "person";
  card.dataset.person = p.id;
  card.dataset.label = p.label;
  const label = document.createElement("b");
  label.className = "label";
  label.textContent = `${p.label === "without_mask" ? "no mask" : "mask"} ${Math.round(p.confidence * 100)}%`;
  label.title = `the vote over ${p.looks} look${p.looks === 1 ? "" : "s"} of ${p.frames} frame${p.frames === 1 ? "" : "s"}`;
  const when = document.createElement("p");
  when.append(timeElement(p.last_ts));
  const seen = document.createElement("p");
  seen.className = "seen";
  seen.textContent = `seen ${p.duration_ms < 1000 ? "under 1 s" : duration(p.duration_ms / 1000)}`;
  card.append(personShot(p), label, when, seen);
  return card;
}

/** Unmasked people first, each group newest first (the order of the API's unmasked_first pages, across pages). */
function renderPeople() {
  const sorted = [...people.values()].sort((a, b) =>
    (a.label !== "without_mask") - (b.label !== "without_mask") || b.last_ts - a.last_ts || (a.id < b.id ? 1 : -1));
  const cards = new Map([...peopleBox.children].map((c) => [c.dataset.person, c]));
  peopleBox.replaceChildren(...sorted.map((p) => cards.get(p.id) || personCard(p)));
  document.getElementById("no-people").hidden = people.size > 0;
  morePeople.hidden = olderPeople === null;
}

/** The newest page (older: false, on load and when the camera counted someone new) or the next older one. */
async function loadPeople(older) {
  const params = new URLSearchParams({ limit: PEOPLE_PAGE, unmasked_first: "true" });
  if (older) params.set("before", olderPeople);
  const response = await fetch(`${base}/people?${params}`);
  if (!response.ok) return;
  const page = await response.json();
  for (const p of page.people) people.set(p.id, p);
  if (older || !pagedBack) olderPeople = page.next_before;
  pagedBack ||= older;
  renderPeople();
}
morePeople.addEventListener("click", () => loadPeople(true));

async function loadChart() {
  lastFetch = Date.now();
  const response = await fetch(`${base}/compliance?window=${chosen}`);
  if (!response.ok) return;
  series = await response.json();
  const minutes = series.step_s / 60;
  const step = minutes >= 60 ? `${minutes / 60} h` : `${minutes} min`;
  const byPeople = series.points.some((p) => p.people > 0);
  document.querySelector("[data-chart-note]").textContent =
    `${step} steps, by capture time · ` +
    (byPeople ? "line: people, dashed: observations, bars: people" : "line: observations, bars: faces") +
    " · hollow: still filling";
  chart = drawChart(canvas, series);
  renderSettled(step);
}

/** The chart's headline: the complete steps shown, the one still filling left out (its figure still swings). */
function renderSettled(step) {
  const s = settled(series);
  const el = document.querySelector("[data-chart-now]");
  const figure = el.querySelector(".v");
  figure.textContent = pct(s.ratio);
  setGrade(el, grade(s.ratio));
  el.querySelector(".l").textContent = s.n
    ? `of ${count(s.n)} ${s.byPeople ? (s.n === 1 ? "person" : "people") : "faces"} · complete ${step} steps`
    : `nobody counted in complete ${step} steps`;
}

function choose(w) {
  chosen = w;
  history.replaceState(null, "", `#${w}`);
  for (const b of document.querySelectorAll("[data-pick]")) b.setAttribute("aria-pressed", String(b.dataset.pick === w));
  loadChart();
}

function addEvents(events, atTop) {
  for (const ev of events) {
    if (eventsBox.querySelector(`[data-event="${CSS.escape(ev.id)}"]`)) continue;
    const card = violationCard(ev);
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
loadPeople(false);
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
