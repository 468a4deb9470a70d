"""Read what producers and workers wrote to Redis into the API's models: cameras, overview, series, events."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, cast

import redis

from dashboard import queues
from dashboard.models import (
    WINDOWS,
    CameraDetail,
    CameraSettings,
    CameraState,
    CameraStatus,
    CameraSummary,
    Compliance,
    Counters,
    FacesByWindow,
    FiringAlert,
    Overview,
    PeopleByWindow,
    PeoplePage,
    PersonRecord,
    ProcessInfo,
    Series,
    SeriesPoint,
    Site,
    Thresholds,
    ViolationEvent,
    ViolationsPage,
)
from maskwatch import compliance, jobstore, people
from maskwatch.codec import decode_event
from maskwatch.compliance import COUNTERS, DAY_MINUTES, MINUTE_MS, STATS_RETENTION_DAYS, Counts, bucket_of
from maskwatch.exceptions import MessageError
from maskwatch.keys import Keys
from maskwatch.processes import FAILING, STOPPED, read_process_states
from maskwatch.redaction import mask_text
from maskwatch.utils import decode_hash, text

if TYPE_CHECKING:
    from dashboard.state import DashboardState

log = logging.getLogger(__name__)
RECENT_S = WINDOWS["15m"]  # window_counts reads minutes this recent on every call
EVENTS_SCAN_MAX = 20_000  # entries of the events stream one request may examine
EVENTS_SCAN_CHUNK = 500
# A camera online with no motion for this long reads "quiet": its producer counts frames idle rather
# than sending them (docs/architecture.md, "Keyed by camera"). Long enough that a corridor with
# people passing now and then does not flicker between the two.
QUIET_AFTER_S = 30.0
_STATES: tuple[CameraState, ...] = ("online", "reconnecting", "offline")


def number_field(fields: Mapping[str, str], name: str, kind: type[int | float]) -> int | float | None:
    """A numeric field of a decoded hash; None when it is absent, empty or not a number."""
    value = fields.get(name)
    try:
        return kind(float(value)) if value else None
    except ValueError:
        return None


def read_statuses(r: redis.Redis, keys: Keys, cams: list[str]) -> dict[str, dict[bytes, bytes]]:
    with r.pipeline(transaction=False) as p:
        for cam in cams:
            p.hgetall(keys.cam_status(cam))
        return dict(zip(cams, p.execute()))


def camera_status(raw: dict[bytes, bytes], now_s: float, stale_after_s: float) -> CameraStatus:
    """The producer's report; ``offline`` when there is none or it has not been refreshed for too long."""
    fields = decode_hash(raw)
    state = fields.get("state")
    updated = number_field(fields, "updated", float)
    if state not in _STATES or updated is None or now_s - updated > stale_after_s:
        state = "offline"
    last_error = fields.get("last_error")
    return CameraStatus(
        state=state,
        detail=fields.get("detail") or None,
        last_frame_ts=number_field(fields, "last_frame_ts", int) or None,  # 0 until the first frame
        fps=number_field(fields, "fps", float),
        sent=number_field(fields, "sent", int),
        skipped=number_field(fields, "skipped", int),
        dropped=number_field(fields, "dropped", int),
        reconnects=number_field(fields, "reconnects", int),
        idle=number_field(fields, "idle", int),
        keyframes=number_field(fields, "keyframes", int),
        last_motion_ts=number_field(fields, "last_motion_ts", int) or None,  # 0 until the first motion
        # the producer masks credentials already; masking again costs nothing and guards the page
        last_error=mask_text(last_error) if last_error else None,
        producer=fields.get("producer"),
        updated=updated,
    )


def is_quiet(status: CameraStatus, now_ms: int) -> bool:
    """Online, gating on motion, and nothing moved for QUIET_AFTER_S (or ever, with frames already counted idle)."""
    if status.state != "online" or status.idle is None:  # offline, or a producer that does not gate
        return False
    if status.last_motion_ts is None:
        return status.idle > 0
    return now_ms - status.last_motion_ts > QUIET_AFTER_S * 1000


def _age_s(ts_ms: int | None, now_ms: int) -> float | None:
    return None if ts_ms is None else max(0.0, (now_ms - ts_ms) / 1000)


def _counters(c: Counts) -> Counters:
    return Counters(**{name: getattr(c, name) for name in COUNTERS})


def _by_window(per_window: dict[int, Counts]) -> dict[str, Any]:
    """The per-window fields of a camera or the site: observations' compliance and faces, and the people figures."""
    def each(figure: str) -> dict[str, Any]:
        return {label: getattr(per_window[s], figure) for label, s in WINDOWS.items()}

    return {"people": PeopleByWindow(**each("people")),
            "people_without_mask": PeopleByWindow(**each("people_without_mask")),
            "people_compliance": Compliance(**each("people_compliance")),
            "compliance": Compliance(**each("compliance")), "faces": FacesByWindow(**each("faces"))}


def _summary(cam: str, enabled: bool, error: str | None, per_window: dict[int, Counts], totals: Counts,
             status: CameraStatus, now_ms: int) -> CameraSummary:
    """``error`` (the config's, if it cannot be used) becomes why the camera is not sending: else the producer's
    last failure, while an enabled camera is not online."""
    error = mask_text(error) if error else (status.last_error if enabled and status.state != "online" else None)
    return CameraSummary(id=cam, status=status.state, last_frame_age_s=_age_s(status.last_frame_ts, now_ms),
                         **_by_window(per_window), totals=_counters(totals), enabled=enabled, error=error,
                         quiet=is_quiet(status, now_ms), last_motion_age_s=_age_s(status.last_motion_ts, now_ms))


def thresholds(state: DashboardState) -> Thresholds:
    return Thresholds(good=state.settings.compliance_good, warn=state.settings.compliance_warn)


def window_counts(state: DashboardState, cams: list[str], now_ms: int) -> dict[str, dict[int, Counts]]:
    """Per camera, the counts over the overview windows (seconds -> counts).

    Minutes of the last 15 are read on every call, older ones once a minute per camera (the cache
    is keyed by the bounds, which move with the clock). Live pages ask every second and a day of
    minutes is most of the work, while counts for minutes over 15 minutes old come only from
    workers lagging that far behind: they reach the 1 h and 24 h figures up to a minute later.
    """
    seconds = list(WINDOWS.values())
    bounds = compliance.window_bounds(seconds, now_ms)
    split = bounds.index(compliance.window_bounds([RECENT_S], now_ms)[0])
    older, recent = bounds[:split + 1], bounds[split:]
    old_bins = state.older_bins.get(older, cams,
                                    lambda missing: compliance.sum_bins(state.r, state.keys, missing, older))
    new_bins = compliance.sum_bins(state.r, state.keys, cams, recent)
    return {cam: compliance.fold_windows(bounds, old_bins[cam] + new_bins[cam], seconds, now_ms) for cam in cams}


def _camera_figures(state: DashboardState, cams: list[str], now_ms: int) -> tuple[
        dict[str, dict[int, Counts]], dict[str, Counts], dict[str, CameraStatus]]:
    r, keys = state.r, state.keys
    per_window = window_counts(state, cams, now_ms)
    totals = compliance.totals(r, keys, cams)
    raw = read_statuses(r, keys, cams)
    statuses = {cam: camera_status(raw[cam], now_ms / 1000, state.stale_after_s) for cam in cams}
    return per_window, totals, statuses


def overview(state: DashboardState, now_ms: int) -> Overview:
    """Every registered camera's figures and the site's, read in a few round trips."""
    configs, errors = state.registry.all()
    cams = sorted({*configs, *errors})
    per_window, totals, statuses = _camera_figures(state, cams, now_ms)
    summaries = [
        _summary(cam, configs[cam].enabled if cam in configs else False, errors.get(cam), per_window[cam],
                 totals[cam], statuses[cam], now_ms)
        for cam in cams
    ]
    site_windows = {s: compliance.total(per_window[cam][s] for cam in cams) for s in WINDOWS.values()}
    site = Site(**_by_window(site_windows), cameras=len(cams), online=sum(statuses[c].state == "online" for c in cams))
    failing = [p for p in processes(state.r, state.keys, now_ms)
               if p.state in (FAILING, "unknown") or (p.state == STOPPED and p.last_error)]  # stopped: given up on
    return Overview(generated_at=now_ms, thresholds=thresholds(state), site=site, cameras=summaries,
                    alerts=firing_alerts(state, sorted(configs)), failing=failing)


def processes(r: redis.Redis, keys: Keys, now_ms: int) -> list[ProcessInfo]:
    """The children of `maskwatch up` as it last reported them; ``unknown`` once it stopped reporting."""
    return [ProcessInfo(name=p.name, state="unknown" if p.is_stale(now_ms) else p.state,
                        pid=p.pid, restarts=p.restarts, last_error=p.last_error, since=p.since_ms,
                        updated=p.updated_ms, supervisor=p.supervisor)
            for p in read_process_states(r, keys)]


def firing_alerts(state: DashboardState, cams: list[str]) -> list[FiringAlert]:
    """The cameras' compliance alerts that fire now, as the side jobs last moved them."""
    s = state.settings
    return [FiringAlert(camera=a.camera, since=a.since_ms, compliance=a.compliance,
                        basis="people" if a.basis == "people" else "observations", people=a.people, faces=a.faces,
                        threshold=s.alert_threshold, window_s=s.alert_window_s, evaluated=a.evaluated_ms)
            for a in jobstore.alert_states(state.r, state.keys, cams) if a.state == "firing"]


def camera_detail(state: DashboardState, cam: str, now_ms: int) -> CameraDetail | None:
    """One camera's figures, config (credentials masked), producer report and frames stream; None if not registered."""
    raw_config = state.r.hget(state.keys.cameras, cam)
    if raw_config is None:
        return None
    configs, errors = state.registry.all()
    config = configs.get(cam)
    per_window, totals, statuses = _camera_figures(state, [cam], now_ms)
    summary = _summary(cam, config.enabled if config else False, errors.get(cam), per_window[cam], totals[cam],
                       statuses[cam], now_ms)
    settings = CameraSettings(**config.public()) if config else None
    queue = queues.camera_queues(state.r, state.keys, [cam])[cam]
    return CameraDetail(**summary.model_dump(), config=settings, status_detail=statuses[cam], queue=queue)


def compliance_series(state: DashboardState, cam: str, window_s: int, step_s: int, now_ms: int) -> Series:
    points = [
        SeriesPoint(start=p.start_ms, compliance=p.counts.compliance, people_compliance=p.counts.people_compliance,
                    partial=p.start_ms + step_s * 1000 > now_ms + 1, **_counters(p.counts).model_dump())
        for p in compliance.series(state.r, state.keys, cam, window_s, step_s, now_ms)
    ]
    since = data_since(state.r, state.keys, cam, points[0].start if points else now_ms, now_ms)
    return Series(camera=cam, window_s=window_s, step_s=step_s, thresholds=thresholds(state), points=points,
                  data_since=since)


def data_since(r: redis.Redis, keys: Keys, cam: str, start_ms: int, now_ms: int) -> int | None:
    """The start of the camera's first counted minute when it is at or after ``start_ms``, else None.

    None also when the camera has no statistics. Days before the start's day are only checked for
    existence (a day's hash exists once a minute of it was counted); the minutes of one day are read
    only when the camera's statistics begin on or after the start's day: a young camera, or a window
    longer than its life.
    """
    today, first_day = now_ms // MINUTE_MS // DAY_MINUTES, start_ms // MINUTE_MS // DAY_MINUTES
    days = range(today - STATS_RETENTION_DAYS, today + 1)
    day_ms = DAY_MINUTES * MINUTE_MS
    with r.pipeline(transaction=False) as p:
        for day in days:
            p.exists(keys.stats(cam, bucket_of(day * day_ms)[0]))
        present = [day for day, n in zip(days, p.execute()) if n]
    if not present or present[0] < first_day:
        return None
    fields = cast(list[bytes], r.hkeys(keys.stats(cam, bucket_of(present[0] * day_ms)[0])))
    if not fields:  # the day expired in between
        return None
    minute = min(int(f.split(b":", 1)[0]) for f in fields)
    since = (present[0] * DAY_MINUTES + minute) * MINUTE_MS
    return since if since >= start_ms else None


def violation(fields: dict[bytes, bytes]) -> ViolationEvent:
    """An events-stream entry as the API shows it; raises MessageError naming a malformed field."""
    e = decode_event(fields)
    person = {"person": e.person, "duration_ms": e.duration_ms, "confidence": e.confidence} if e.person else {}
    return ViolationEvent(id=e.snap, camera=e.cam, seq=e.seq, ts=e.ts, score=e.score, box=list(e.box),
                          snapshot_url=jobstore.snapshot_url(e.snap), **person)


def person_record(p: people.Person) -> PersonRecord:
    """A person as the API shows it: their snapshot's URL, or null when the privacy setting kept no image."""
    return PersonRecord(id=p.id, camera=p.cam, first_ts=p.first_ts, last_ts=p.last_ts, duration_ms=p.duration_ms,
                        frames=p.frames, looks=p.looks, label=p.label, confidence=p.confidence, best_ts=p.best_ts,
                        best_box=list(p.best_box) if p.best_box else None,
                        snapshot_url=jobstore.snapshot_url(p.snap) if p.snap else None)


def people_page(state: DashboardState, cams: list[str], limit: int, before: people.Cursor | None,
                unmasked_first: bool) -> PeoplePage:
    """The people of ``cams`` (one camera, or the site's) newest first, one page."""
    page = people.newest_people(state.r, state.keys, cams, limit, before, unmasked_first)
    return PeoplePage(people=[person_record(p) for p in page.people],
                      next_before=str(page.next) if page.next else None)


def recent_events(state: DashboardState, camera: str | None, since_ms: int | None, limit: int) -> list[ViolationEvent]:
    """Newest violations first, optionally of one camera and captured at or after ``since_ms``."""
    return scan_events(state, lambda ev: camera is None or ev.camera == camera, since_ms, None, limit)[0]


def violations_page(state: DashboardState, cams: Collection[str] | None, since_ms: int | None, until_ms: int | None,
                    before: str | None, limit: int) -> ViolationsPage:
    """One page of violations newest first: of ``cams`` (None: all), captured in [since, until], after a cursor."""
    found, cursor = scan_events(state, lambda ev: (cams is None or ev.camera in cams)
                                and (until_ms is None or ev.ts <= until_ms), since_ms, before, limit)
    return ViolationsPage(violations=found, next_before=cursor)


def scan_events(state: DashboardState, keep: Callable[[ViolationEvent], bool], since_ms: int | None,
                before: str | None, limit: int) -> tuple[list[ViolationEvent], str | None]:
    """Up to ``limit`` events that ``keep`` accepts, newest first, older than the entry id ``before``; and where
    the next page starts (an entry id; None when the stream, or the part captured since ``since_ms``, is done).

    One request examines at most EVENTS_SCAN_MAX entries; when it stops there, the cursor is the last
    entry examined, so paging goes on from it.
    """
    # Stream ids are write times, never earlier than capture times: entries before `since` cannot match.
    low = str(since_ms) if since_ms is not None else "-"
    high = "+" if before is None else "(" + before
    out: list[tuple[str, ViolationEvent]] = []
    scanned = 0
    while scanned < EVENTS_SCAN_MAX:
        batch: Any = state.r.xrevrange(state.keys.events, max=high, min=low, count=EVENTS_SCAN_CHUNK)
        scanned += len(batch)
        for entry_id, fields in batch:
            try:
                ev = violation(fields)
            except MessageError as exc:
                log.warning("skipping unreadable event: %s", exc, extra={"entry": text(entry_id)})
                continue
            if keep(ev) and (since_ms is None or ev.ts >= since_ms):
                if len(out) == limit:  # one match more than the page: an older page exists
                    return [e for _, e in out], out[-1][0]
                out.append((text(entry_id), ev))
        if len(batch) < EVENTS_SCAN_CHUNK:
            return [e for _, e in out], None
        high = "(" + text(batch[-1][0])
    return [e for _, e in out], high[1:]
