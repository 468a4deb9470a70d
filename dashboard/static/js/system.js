// The system page: queue lag (all cameras and each one), workers, dead letters and per-camera frame flow, kept live.
import { clockTime, connectLive, count, initialData, showStatus } from "./common.js";

function cell(row, text, numeric = false) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "–" : text;
  if (numeric) td.className = "num";
}

function stat(name, value, alert = false) {
  const el = document.querySelector(`[data-stat="${name}"]`);
  el.querySelector("dd").textContent = value;
  el.classList.toggle("alert", alert);
}

function render(sys) {
  const skipped = sys.cameras.reduce((s, c) => s + (c.skipped || 0), 0);
  stat("lag", sys.queue.lag === null ? "–" : count(sys.queue.lag));
  stat("pending", count(sys.queue.pending));
  stat("length", count(sys.queue.length));
  stat("workers", count(sys.workers_alive), sys.workers_alive === 0);
  stat("skipped", count(skipped), skipped > 0);
  stat("dead", count(sys.dead_lettered), sys.dead_lettered > 0);

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
    cell(row, w.started ? clockTime(w.started * 1000, true) : null);
    cell(row, w.last_seen ? new Date(w.last_seen * 1000).toLocaleTimeString() : null);
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
    cell(row, c.worker);
    cell(row, c.last_error);
  }
}

render(initialData());
connectLive(["system"], { system: render });
