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

export function clockTime(ms, withDay = false) {
  const opts = { hour: "2-digit", minute: "2-digit" };
  if (withDay) opts.weekday = "short";
  return new Date(ms).toLocaleString([], opts);
}

// The one format of a moment on the pages (violations, people), in the viewer's time zone.
const momentFormat = new Intl.DateTimeFormat([], {
  weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const fullFormat = new Intl.DateTimeFormat([], { dateStyle: "medium", timeStyle: "long" });

/** A <time> element showing `ms` in the one format; its title gives the full date and the time zone. */
export function timeElement(ms) {
  const el = document.createElement("time");
  el.dateTime = new Date(ms).toISOString();
  el.textContent = momentFormat.format(ms);
  el.title = fullFormat.format(ms);
  return el;
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
  el.textContent = `frame #${r.seq} at ${clockTime(r.ts)}: ${r.faces} face${r.faces === 1 ? "" : "s"}${unmasked}`;
  el.hidden = false;
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
  el.textContent = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
tickClock();
setInterval(tickClock, 1000);
