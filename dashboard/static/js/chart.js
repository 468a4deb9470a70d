// The compliance chart: a canvas with threshold bands, people per step as bars and people compliance as the line,
// observations' compliance as a dashed line beside it; a window without people draws observations alone.
// The x-range starts where the camera's statistics begin when that is inside the window (a new camera's minutes
// are not squeezed against the right edge), and the step still filling is drawn hollow, reached by a dotted line,
// and left out of the headline (its figure swings until the step ends).
import { axisTime, grade, moment, pct, thresholds } from "./common.js";

const PAD = { left: 46, right: 14, top: 12, bottom: 28 };
const TICKS_MIN = [1, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880];
const BAR_SHARE = 0.35; // bars use the lower part of the plot so the line stays readable

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function timeTicks(start, end, width, withDay) {
  const maxTicks = Math.max(2, Math.floor(width / (withDay ? 120 : 80))); // room for one label each
  const spanMin = (end - start) / 60000;
  const stepMin = TICKS_MIN.find((m) => spanMin / m <= maxTicks) || TICKS_MIN[TICKS_MIN.length - 1];
  const step = stepMin * 60000;
  const offset = new Date(start).getTimezoneOffset() * 60000; // ticks on round local times
  const ticks = [];
  for (let t = Math.ceil((start - offset) / step) * step + offset; t <= end; t += step) ticks.push(t);
  return ticks;
}

/** The steps of `series` a chart shows: from the step holding the first counted minute when that is inside the
 * window, else all of them. */
export function shownPoints(series) {
  const stepMs = series.step_s * 1000;
  if (series.data_since === null || series.data_since === undefined) return series.points;
  const from = Math.floor(series.data_since / stepMs) * stepMs;
  return series.points.filter((p) => p.start >= from);
}

/** The figures of the complete steps shown (the still-filling one left out): people or faces, and compliance. */
export function settled(series) {
  const done = shownPoints(series).filter((p) => !p.partial);
  const sum = (name) => done.reduce((s, p) => s + p[name], 0);
  const people = sum("people");
  const faces = sum("faces");
  if (people > 0) return { byPeople: true, n: people, ratio: sum("people_with_mask") / people };
  return { byPeople: false, n: faces, ratio: faces > 0 ? sum("with_mask") / faces : null };
}

/** Draw `series` (the /compliance response) on `canvas`; returns a function(i) that draws a cursor at point i. */
export function drawChart(canvas, series) {
  const points = shownPoints(series);
  const stepMs = series.step_s * 1000;
  const colours = { good: css("--good"), warn: css("--warn"), bad: css("--bad"), none: css("--none") };
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);

  const x0 = PAD.left, x1 = w - PAD.right, y0 = PAD.top, y1 = h - PAD.bottom;
  const start = points.length ? points[0].start : Date.now();
  const end = points.length ? points[points.length - 1].start + stepMs : start + 1;
  const x = (t) => x0 + ((t - start) / (end - start)) * (x1 - x0);
  const y = (r) => y1 - r * (y1 - y0);
  const totalFaces = points.reduce((s, p) => s + p.faces, 0);
  const totalPeople = points.reduce((s, p) => s + p.people, 0);
  // People when the window counted any (tracking on); else observations, as before tracking.
  const byPeople = totalPeople > 0;
  const barOf = (p) => (byPeople ? p.people : p.faces);
  const maxBar = Math.max(1, ...points.map(barOf));
  const multiDay = end - start > 26 * 3600000; // a day's window plus its partial steps still reads by the clock

  function frame(cursor) {
    ctx.clearRect(0, 0, w, h);
    // threshold bands, so a glance tells which zone the line is in
    const bands = [[thresholds.good, 1, "--good-band"], [thresholds.warn, thresholds.good, "--warn-band"], [0, thresholds.warn, "--bad-band"]];
    for (const [lo, hi, colour] of bands) {
      ctx.fillStyle = css(colour);
      ctx.fillRect(x0, y(hi), x1 - x0, y(lo) - y(hi));
    }
    // grid and labels
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = css("--muted");
    ctx.strokeStyle = css("--line");
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const r of [0, 0.25, 0.5, 0.75, 1]) {
      ctx.beginPath();
      ctx.moveTo(x0, Math.round(y(r)) + 0.5);
      ctx.lineTo(x1, Math.round(y(r)) + 0.5);
      ctx.stroke();
      ctx.fillText(`${r * 100}%`, x0 - 6, y(r));
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of timeTicks(start, end, x1 - x0, multiDay)) ctx.fillText(axisTime(t, multiDay), x(t), y1 + 8);

    // people (or faces) per step; the step still filling as an outline
    const barW = Math.max(1, x(start + stepMs) - x(start) - 1);
    ctx.fillStyle = "rgba(157, 167, 179, 0.35)";
    ctx.strokeStyle = "rgba(157, 167, 179, 0.7)";
    ctx.lineWidth = 1;
    ctx.setLineDash([3, 3]);
    for (const p of points) {
      if (!barOf(p)) continue;
      const bh = (barOf(p) / maxBar) * (y1 - y0) * BAR_SHARE;
      if (p.partial) ctx.strokeRect(x(p.start) + 0.5, y1 - bh + 0.5, barW - 1, bh - 1);
      else ctx.fillRect(x(p.start), y1 - bh, barW, bh);
    }
    ctx.setLineDash([]);

    // compliance: a line through steps with a figure, broken where a step had none; dotted into the step
    // still filling
    const mid = (p) => x(p.start + stepMs / 2);
    function line(ratioOf, colour, width, dash) {
      ctx.strokeStyle = colour;
      ctx.lineWidth = width;
      let prev = null;
      for (const p of points) {
        const r = ratioOf(p);
        if (r === null) {
          prev = null;
          continue;
        }
        if (prev) {
          ctx.setLineDash(p.partial ? [2, 4] : dash);
          ctx.beginPath();
          ctx.moveTo(mid(prev.p), y(prev.r));
          ctx.lineTo(mid(p), y(r));
          ctx.stroke();
        }
        prev = { p, r };
      }
      ctx.setLineDash([]);
    }
    const dot = points.length <= 200 ? 3.5 : 2;
    if (byPeople) { // observations beside, dashed with hollow dots, so a lone step shows too
      line((p) => p.compliance, css("--muted"), 1.5, [5, 4]);
      ctx.strokeStyle = css("--muted");
      ctx.lineWidth = 1.5;
      for (const p of points) {
        if (p.compliance === null) continue;
        ctx.beginPath();
        ctx.arc(mid(p), y(p.compliance), dot - 0.5, 0, 2 * Math.PI);
        ctx.stroke();
      }
    }
    const primary = byPeople ? (p) => p.people_compliance : (p) => p.compliance;
    line(primary, css("--text"), 2, []);
    for (const p of points) {
      const r = primary(p);
      if (r === null) continue;
      ctx.beginPath();
      ctx.arc(mid(p), y(r), p.partial ? dot + 1 : dot, 0, 2 * Math.PI);
      if (p.partial) { // hollow: this figure is still moving
        ctx.fillStyle = css("--card");
        ctx.fill();
        ctx.strokeStyle = colours[grade(r)];
        ctx.lineWidth = 2;
        ctx.stroke();
      } else {
        ctx.fillStyle = colours[grade(r)];
        ctx.fill();
      }
    }

    if (!totalFaces) {
      ctx.fillStyle = css("--muted");
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.font = "15px system-ui, sans-serif";
      ctx.fillText("nobody counted, no faces seen in this window", (x0 + x1) / 2, (y0 + y1) / 2);
    }
    if (cursor !== undefined && points[cursor]) {
      ctx.strokeStyle = css("--accent");
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(Math.round(mid(points[cursor])) + 0.5, y0);
      ctx.lineTo(Math.round(mid(points[cursor])) + 0.5, y1);
      ctx.stroke();
    }
  }
  frame();
  canvas.dataset.points = String(series.points.length);
  canvas.dataset.shown = String(points.length);
  canvas.dataset.from = String(start);
  canvas.dataset.partial = String(points.some((p) => p.partial));
  canvas.dataset.faces = String(totalFaces);
  canvas.dataset.people = String(totalPeople);
  canvas.dataset.rendered = "true";
  return {
    frame,
    indexAt: (px) => Math.min(points.length - 1, Math.max(0, Math.floor(((px - x0) / (x1 - x0)) * points.length))),
    describe: (i) => {
      const p = points[i];
      const when = `${moment(p.start)}${p.partial ? " (still filling)" : ""}`;
      const observations = `observations ${pct(p.compliance)} of ${p.faces} faces`;
      if (!byPeople) return `${when} · ${observations}, ${p.without_mask} without mask`;
      return `${when} · people ${pct(p.people_compliance)} of ${p.people}, ` +
        `${p.people_without_mask} without mask · ${observations}`;
    },
  };
}
