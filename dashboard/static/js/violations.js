// The violations page: filters (camera, capture time) in the URL, so a view can be bookmarked and shared; pages
// by the API's cursor; on the newest page, new violations matching the filters appear live.
import { connectLive, initialData, moment, violationCard } from "./common.js";

const filters = initialData("filters-data");
const page = initialData();
const form = document.getElementById("filters");
const range = document.getElementById("range");
const from = document.getElementById("from");
const to = document.getElementById("to");
const grid = document.getElementById("events");

/** An epoch ms as a datetime-local input's value, in the viewer's zone. */
function localValue(ms) {
  const d = new Date(ms);
  return new Date(ms - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function showCustom() {
  for (const el of document.querySelectorAll("[data-custom]")) el.hidden = range.value !== "custom";
}

/** The URL of these filters (the page's own query), without a cursor unless `before` is given. */
function urlWith(before) {
  const q = new URLSearchParams();
  if (filters.camera) q.set("camera", filters.camera);
  if (filters.last) q.set("last", filters.last);
  else {
    if (filters.since !== null) q.set("since", filters.since);
    if (filters.until !== null) q.set("until", filters.until);
  }
  q.set("limit", filters.limit);
  if (before) q.set("before", before);
  return `/violations?${q}`;
}

range.value = filters.last || (filters.since !== null || filters.until !== null ? "custom" : "");
if (filters.since !== null && !filters.last) from.value = localValue(filters.since);
if (filters.until !== null) to.value = localValue(filters.until);
showCustom();
range.addEventListener("change", showCustom);

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const q = new URLSearchParams();
  const camera = document.getElementById("camera").value;
  if (camera) q.set("camera", camera);
  if (range.value === "custom") {
    if (from.value) q.set("since", new Date(from.value).getTime());
    if (to.value) q.set("until", new Date(to.value).getTime() + 59999); // "to 14:05" includes that minute
  } else if (range.value) q.set("last", range.value);
  q.set("limit", document.getElementById("limit").value);
  location.href = `/violations?${q}`;
});

function summary() {
  const n = grid.children.length;
  const where = filters.camera ? `at ${filters.camera}` : "at all cameras";
  let when = "";
  if (filters.last) when = ` in the last ${filters.last}`;
  else if (filters.since !== null && filters.until !== null) when = ` between ${moment(filters.since)} and ${moment(filters.until)}`;
  else if (filters.since !== null) when = ` since ${moment(filters.since)}`;
  else if (filters.until !== null) when = ` until ${moment(filters.until)}`;
  const which = filters.before ? "older violations" : "newest violations";
  document.getElementById("summary").textContent = `${n} ${which} ${where}${when}`;
  document.getElementById("none").hidden = n > 0;
}

grid.append(...page.violations.map((ev) => violationCard(ev, true)));
const newest = document.getElementById("newest");
newest.hidden = !filters.before;
newest.href = urlWith(null);
const older = document.getElementById("older");
older.hidden = !page.next_before;
older.href = urlWith(page.next_before);
summary();

// Only the newest page of a range that reaches now takes new violations.
if (!filters.before && filters.until === null) {
  connectLive(["violations"], {
    violation: (ev) => {
      if (filters.camera && ev.camera !== filters.camera) return;
      if (grid.querySelector(`[data-event="${CSS.escape(ev.id)}"]`)) return;
      const card = violationCard(ev, true);
      card.classList.add("new");
      grid.prepend(card);
      summary();
    },
  });
}
