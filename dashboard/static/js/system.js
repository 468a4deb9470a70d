// The system page: capture-to-result latency, queue lag (all cameras and each one), the processes `maskwatch up`
// supervises, workers, dead letters and per-camera frame flow, kept live.
import { connectLive, count, initialData, millis, showStatus, timeElement } from "./common.js";

function cell(row, value, numeric = false, label = "") {
  const td = row.insertCell();
  if (value instanceof Node) td.append(value);
  else td.textContent = value === null || value === undefined ? "–" : value;
  if (numeric) td.className = "num";
  if (label) td.dataset.label = label; // a phone shows the table's rows as cards, each figure named
  return td;
}

const HEALTHY = new Set(["running", "starting"]);

function stat(name, value, alert = false) {
  const el = document.querySelector(`[data-stat="${name}"]`);
  el.querySelector("dd").textContent = value;
  el.classList.toggle("alert", alert);
}

function chip(state) {
  const el = document.createElement("span");
  el.className = "status";
  el.dataset.state = state;
  el.textContent = state;
  return el;
}

function renderProcesses(sys) {
  const card = document.getElementById("processes-card");
  card.hidden = sys.processes.length === 0;
  const body = document.querySelector("#processes tbody");
  body.replaceChildren();
  // the ones in trouble first, each group by name
  const ordered = [...sys.processes].sort((a, b) => HEALTHY.has(a.state) - HEALTHY.has(b.state));
  for (const p of ordered) {
    const row = body.insertRow();
    row.dataset.process = p.name;
    row.dataset.state = p.state;
    cell(row, p.name).className = "name";
    const state = cell(row, chip(p.state));
    if (p.state === "unknown") state.title = "the `maskwatch up` running it stopped reporting (killed?)";
    if (p.state === "stopped") state.title = "given up on: it failed each time it started";
    cell(row, p.pid, true, "pid");
    cell(row, count(p.restarts), true, "restarts");
    cell(row, p.since ? timeElement(p.since) : null, false, "since");
    const error = document.createElement("pre");
    error.className = "process-error";
    error.textContent = p.last_error || "";
    cell(row, p.last_error ? error : null).className = p.last_error ? "error-cell" : "error-cell none";
  }
  document.querySelector('[data-advice="up"]').hidden = !sys.supervised;
  document.querySelector('[data-advice="alone"]').hidden = sys.supervised;
}

function render(sys) {
  const skipped = sys.cameras.reduce((s, c) => s + (c.skipped || 0), 0);
  const latency = sys.latency || { p50_ms: null, p95_ms: null, samples: 0, window_s: 300 };
  stat("latency-p50", millis(latency.p50_ms));
  stat("latency-p95", millis(latency.p95_ms));
  document.getElementById("latency-note").textContent = latency.samples
    ? `Latency over the newest ${count(latency.samples)} results (at most ${Math.round(latency.window_s / 60)} min old).`
    : `Latency: no result in the last ${Math.round(latency.window_s / 60)} min.`;
  stat("lag", sys.queue.lag === null ? "–" : count(sys.queue.lag));
  stat("pending", count(sys.queue.pending));
  stat("length", count(sys.queue.length));
  stat("workers", count(sys.workers_alive), sys.workers_alive === 0);
  stat("skipped", count(skipped), skipped > 0);
  stat("dead", count(sys.dead_lettered), sys.dead_lettered > 0);
  renderProcesses(sys);

  const workers = document.querySelector("#workers tbody");
  workers.replaceChildren();
  for (const w of sys.workers) {
    const row = workers.insertRow();
    cell(row, w.id);
    cell(row, w.host);
    cell(row, w.device);
    cell(row, w.runtime);
    cell(row, w.batch_size, true);
    cell(row, w.fps === null ? null : w.fps.toFixed(1), true);
    cell(row, w.crops_per_s === null ? null : w.crops_per_s.toFixed(1), true);
    cell(row, count(w.frames_total), true);
    cell(row, w.cameras.length ? w.cameras.join(", ") : "none");
    cell(row, w.started ? timeElement(w.started * 1000) : null);
    cell(row, w.last_seen ? timeElement(w.last_seen * 1000) : null);
  }
  document.getElementById("no-workers").hidden = sys.workers.length > 0;

  const flows = document.querySelector("#flows tbody");
  flows.replaceChildren();
  for (const c of sys.cameras) {
    const row = flows.insertRow();
    const link = document.createElement("a");
    link.href = `/cameras/${encodeURIComponent(c.id)}`;
    link.textContent = c.id;
    row.insertCell().append(link);
    const state = document.createElement("span");
    state.className = "status";
    showStatus(state, { enabled: true, status: c.state, quiet: c.quiet });
    row.insertCell().append(state);
    cell(row, c.fps === null ? null : c.fps.toFixed(1), true);
    cell(row, count(c.sent), true);
    cell(row, count(c.idle), true);
    cell(row, count(c.skipped), true);
    cell(row, count(c.dropped), true);
    cell(row, count(c.lag), true);
    cell(row, count(c.pending), true);
    cell(row, millis(c.latency ? c.latency.p50_ms : null), true);
    cell(row, millis(c.latency ? c.latency.p95_ms : null), true);
    cell(row, c.worker);
    cell(row, c.last_error);
  }
}

render(initialData());
connectLive(["system"], { system: render });
