// Shared by every page: grading by the settings' thresholds, formatting, the live stream, the clock.

const body = document.body;
export const thresholds = { good: Number(body.dataset.good), warn: Number(body.dataset.warn) };

/** "good" | "warn" | "bad" | "none" for a compliance ratio (null: no face seen). */
export function grade(ratio) {
  if (ratio === null || ratio === undefined) return "none";
  if (ratio >= thresholds.good) return "good";
  return ratio >= thresholds.warn ? "warn" : "bad";
}

/** Grades in words; "none" says what was missing: people counted, or faces seen (observations). */
export function gradeWord(of = "faces") {
  return { good: "good", warn: "warning", bad: "bad", none: of === "people" ? "nobody counted" : "no faces seen" };
}

export function pct(ratio) {
  return ratio === null || ratio === undefined ? "–" : `${Math.round(ratio * 100)}%`;
}

const numberFormat = new Intl.NumberFormat();
export const count = (n) => (n === null || n === undefined ? "–" : numberFormat.format(n));

/** A span of time in words: "40 s", "3 min", "2 h", "4 days". */
export function duration(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return "no frame yet";
  if (seconds < 1) return "now";
  return `${duration(seconds)} ago`;
}

/** A camera's status chip: "quiet" when it is online but nothing moved (its frames are counted idle, not sent). */
export function showStatus(el, cam) {
  const state = !cam.enabled ? "disabled" : cam.status === "online" && cam.quiet ? "quiet" : cam.status;
  el.textContent = state;
  el.dataset.state = state;
  el.title = state === "quiet" ? "online; nothing moved, so frames are counted idle rather than analysed" : "";
}

/** The age line under a camera's name: how long nothing moved for a quiet camera, else the newest frame's age. */
export function cameraAge(cam) {
  if (cam.enabled && cam.status === "online" && cam.quiet) {
    const still = cam.last_motion_age_s;
    return still === null || still === undefined ? "no motion yet" : `no motion for ${duration(still)}`;
  }
  return age(cam.last_frame_age_s);
}

// Times: the server sends epoch ms (or ISO UTC), the browser shows them in the viewer's time zone. A moment
// (a violation, a person, an alert, a process start) always reads the same way; only a chart's axis, where the
// date is plain from the window, is shortened to the clock time.
const axisFormat = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
const axisDayFormat = new Intl.DateTimeFormat([], { weekday: "short", hour: "2-digit", minute: "2-digit" });
const momentFormat = new Intl.DateTimeFormat([], {
  weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const fullFormat = new Intl.DateTimeFormat([], { dateStyle: "medium", timeStyle: "long" });
const clockFormat = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** A chart axis label: the clock time, with the weekday on charts spanning days. */
export function axisTime(ms, withDay = false) {
  return (withDay ? axisDayFormat : axisFormat).format(ms);
}

/** A moment in the one format of the pages, e.g. "Tue 1 Dec, 14:03:07" (in the viewer's locale and zone). */
export function moment(ms) {
  return momentFormat.format(ms);
}

/** Fill a <time> element with `ms` in the one format; its title gives the full date and the time zone. */
export function setTime(el, ms) {
  el.dateTime = new Date(ms).toISOString();
  el.textContent = momentFormat.format(ms);
  el.title = fullFormat.format(ms);
  return el;
}

/** A <time> element showing `ms` in the one format. */
export function timeElement(ms) {
  return setTime(document.createElement("time"), ms);
}

/** Times the server wrote into a page (<time data-ms="...">, e.g. the jobs tables) in the one format. */
export function localizeTimes(root = document) {
  for (const el of root.querySelectorAll("time[data-ms]")) setTime(el, Number(el.dataset.ms));
}

/** Replace the grade-* class of an element. */
export function setGrade(el, g) {
  for (const c of [...el.classList]) if (c.startsWith("grade-")) el.classList.remove(c);
  el.classList.add(`grade-${g}`);
}

/** A count of people without a mask: red once there is any. */
export function showUnmasked(el, n) {
  el.textContent = count(n);
  el.classList.toggle("unmasked", n > 0);
}

/** A chip (.v value) or big figure showing a ratio, coloured by its grade; `of` is "people" or "faces". */
export function showRatio(el, ratio, of = "faces") {
  const target = el.querySelector(".v") || el;
  target.textContent = pct(ratio);
  setGrade(el, grade(ratio));
  el.title = gradeWord(of)[grade(ratio)];
}

/** Show a camera's newest result (from the live "results" event) in a text element. */
export function showResult(el, r) {
  const unmasked = r.without_mask ? `, ${r.without_mask} without mask` : "";
  el.replaceChildren(`frame #${r.seq} of `, timeElement(r.ts), `: ${r.faces} face${r.faces === 1 ? "" : "s"}${unmasked}`);
  el.hidden = false;
}

/** A span of milliseconds as a latency reads: "180 ms", "2.4 s"; a dash for none. */
export function millis(ms) {
  if (ms === null || ms === undefined) return "–";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
}

/** Show the part of a whole frame around `box` ([x, y, w, h] in frame pixels) in the image's box, the box taking
 * `share` of its shorter side; the image still covers the box (no empty border), and a box near an edge stays in. */
export function zoomOnBox(img, [x, y, w, h], share = 0.45) {
  const view = img.parentElement;
  const vw = view.clientWidth;
  const vh = view.clientHeight;
  const nw = img.naturalWidth;
  const nh = img.naturalHeight;
  if (!vw || !vh || !nw || !nh) return;
  const scale = Math.max((share * Math.min(vw, vh)) / Math.max(w, h, 1), vw / nw, vh / nh);
  const clamp = (v, lo) => Math.min(0, Math.max(lo, v));
  img.classList.add("framed");
  img.style.width = `${nw * scale}px`;
  img.style.height = `${nh * scale}px`;
  img.style.left = `${clamp(vw / 2 - (x + w / 2) * scale, vw - nw * scale)}px`;
  img.style.top = `${clamp(vh / 2 - (y + h / 2) * scale, vh - nh * scale)}px`;
}

/** A violation as a card: the snapshot zoomed on the unmasked face with a readable label over it, when and where,
 * linking to the whole snapshot. `withCamera` names the camera (lists of several cameras). */
export function violationCard(ev, withCamera = false) {
  const card = document.createElement("article");
  card.className = "event";
  card.dataset.event = ev.id;
  card.dataset.camera = ev.camera;
  const shot = document.createElement("a");
  shot.className = "shot";
  shot.href = ev.snapshot_url;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = `violation at ${ev.camera}, ${moment(ev.ts)}`;
  img.onload = () => zoomOnBox(img, ev.box);
  img.onerror = () => img.replaceWith(Object.assign(document.createElement("span"), {
    className: "noshot", textContent: "image expired",
  }));
  img.src = ev.snapshot_url;
  const badge = document.createElement("b");
  badge.className = "badge";
  badge.textContent = `no mask ${Math.round(ev.score * 100)}%`;
  shot.append(img, badge);
  const text = document.createElement("p");
  if (withCamera) {
    const cam = document.createElement("a");
    cam.className = "cam";
    cam.href = `/cameras/${encodeURIComponent(ev.camera)}`;
    cam.textContent = ev.camera;
    text.append(cam, " · ");
  }
  text.append(timeElement(ev.ts));
  if (ev.person) text.append(` · seen ${ev.duration_ms < 1000 ? "under 1 s" : duration(ev.duration_ms / 1000)}`);
  card.append(shot, text);
  return card;
}

export function initialData(id = "initial") {
  return JSON.parse(document.getElementById(id).textContent);
}

/** Swap an <img> to a new URL only once the new image has loaded, so frames never flicker;
 * the caption stands in for the image while there is none. */
export function refreshImage(img, caption, url) {
  const next = new Image();
  next.onload = () => {
    img.src = next.src;
    img.hidden = false;
    caption.hidden = true;
  };
  next.onerror = () => {
    img.hidden = true;
    caption.hidden = false;
  };
  next.src = url;
}

/** Follow /api/live; handlers maps event names to functions of the parsed data. */
export function connectLive(topics, handlers) {
  const badge = document.getElementById("live");
  badge.hidden = false;
  const show = (state, text) => {
    badge.dataset.state = state;
    badge.textContent = text;
  };
  const source = new EventSource(`/api/live?topics=${topics.join(",")}`);
  source.onopen = () => show("live", "live");
  source.onerror = () => show("down", "reconnecting");
  source.addEventListener("unavailable", () => show("down", "Redis unavailable"));
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (e) => {
      show("live", "live");
      fn(JSON.parse(e.data));
    });
  }
  return source;
}

function tickClock() {
  const el = document.getElementById("clock");
  el.textContent = clockFormat.format(Date.now());
  el.title = fullFormat.format(Date.now());
}
tickClock();
setInterval(tickClock, 1000);
localizeTimes();
