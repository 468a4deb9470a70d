"""Compliance alerts: per camera, fire once when compliance drops, resolve once when it recovers.

Every :data:`EVALUATE_EVERY_S` the runner reads each registered camera's counts over the last
``MASKWATCH_ALERT_WINDOW_S`` (:func:`maskwatch.compliance.window`, the figure the dashboard shows)
and moves its alert in ``mw:{cam}:alert``. The figure judged is compliance by **people** with
tracking on (``MASKWATCH_TRACKING``) or where the window counted people, else by face observations:
one person standing unmasked for a minute is one person, not 300 faces. With tracking on, faces
never stand in for people, not even before the first person is recorded (a person is recorded when
their track ends, so a camera's first minute holds faces and no people yet).
``MASKWATCH_ALERT_MIN_FACES`` is the least evidence on that basis: people, or faces.

* ``ok`` -> ``firing`` when compliance < ``MASKWATCH_ALERT_THRESHOLD`` with at least
  ``MASKWATCH_ALERT_MIN_FACES`` people (or faces) in the window;
* ``firing`` -> ``ok`` (resolved) when compliance >= threshold + :data:`RESOLVE_MARGIN`, again with
  enough evidence. The margin keeps a camera hovering at the threshold from flapping, and a window
  with too little evidence changes nothing either way: no evidence is not a recovery.

A transition is a compare-and-set in Redis, so several runners evaluating at once fire an
episode once. Each transition goes out through the webhook path (``type: "alert"``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from maskwatch import compliance
from maskwatch.cameras import Registry
from maskwatch.compliance import Counts
from maskwatch.jobstore import alert_states
from maskwatch.settings import Settings
from maskwatch.utils import flat_fields
from worker.jobs.queue import JobContext
from worker.jobs.webhooks import Notifier, iso

log = logging.getLogger(__name__)
EVALUATE_EVERY_S = 10.0
RESOLVE_MARGIN = 0.05
FIRING, OK = "firing", "ok"
FIGURES = ("basis", "compliance", "people", "faces", "evaluated_ms")  # updated by an evaluation without a transition
PEOPLE, OBSERVATIONS = "people", "observations"

# Set the alert's fields only if its state is still the one this evaluation read (absent: ok).
_TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'state') or 'ok'
if cur ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""


def judged(counts: Counts, tracking: bool) -> tuple[str, float | None, int]:
    """What an alert judges: the basis (people with ``tracking`` or when any were counted, else observations),
    its compliance and count."""
    if tracking or counts.people:
        return PEOPLE, counts.people_compliance, counts.people
    return OBSERVATIONS, counts.compliance, counts.faces


def decide(state: str, counts: Counts, s: Settings) -> str | None:
    """The state an alert moves to, or None to stay (pure; the rules of the module docstring)."""
    _, c, n = judged(counts, s.tracking)
    if c is None or n < s.alert_min_faces:
        return None
    if state != FIRING and c < s.alert_threshold:
        return FIRING
    if state == FIRING and c >= min(1.0, s.alert_threshold + RESOLVE_MARGIN):
        return OK
    return None


@dataclass(frozen=True)
class Transition:
    camera: str
    state: str  # firing | ok
    counts: Counts
    at_ms: int
    episode_ms: int  # when the episode started (for a resolution, when it fired)


class AlertEvaluator:
    def __init__(self, ctx: JobContext, notifier: Notifier):
        self.ctx, self.notifier = ctx, notifier
        self.s, self.r, self.keys = ctx.settings, ctx.r, ctx.keys
        self.registry = Registry(self.r, self.keys)
        self.script = self.r.register_script(_TRANSITION)

    def evaluate(self, now_ms: int) -> list[Transition]:
        """Evaluate every registered camera at ``now_ms``; returns the transitions this call made."""
        cams = sorted(self.registry.all()[0])
        if not cams:
            return []
        counts = compliance.windows(self.r, self.keys, cams, [self.s.alert_window_s], now_ms)
        made = []
        for prev in alert_states(self.r, self.keys, cams):
            c = counts[prev.camera][self.s.alert_window_s]
            new_state = decide(prev.state, c, self.s)
            basis, ratio, _ = judged(c, self.s.tracking)
            seen = replace(prev, basis=basis, compliance=ratio, people=c.people, faces=c.faces, evaluated_ms=now_ms)
            if new_state is None:  # only the figures: the state is the compare-and-set's alone
                figures = seen.to_hash()
                self.r.hset(self.keys.alert(prev.camera), mapping={k: figures[k] for k in FIGURES})
                continue
            nxt = replace(seen, state=new_state, since_ms=now_ms, episodes=prev.episodes + (new_state == FIRING))
            if self.script(keys=[self.keys.alert(prev.camera)], args=[prev.state, *flat_fields(nxt.to_hash())]):
                t = Transition(prev.camera, new_state, c, now_ms, now_ms if new_state == FIRING else prev.since_ms)
                self._announce(t)
                made.append(t)
        self.ctx.metrics.alerts_firing.set(sum(a.state == FIRING for a in alert_states(self.r, self.keys, cams)))
        return made

    def _announce(self, t: Transition) -> None:
        label = "fired" if t.state == FIRING else "resolved"
        basis, ratio, n = judged(t.counts, self.s.tracking)
        self.ctx.metrics.alerts.labels(label).inc()
        log.warning("compliance alert %s: %.0f%% of %d %s over %d s (threshold %.0f%%)", label, 100 * (ratio or 0),
                    n, "people" if basis == PEOPLE else "faces", self.s.alert_window_s, 100 * self.s.alert_threshold,
                    extra={"cam": t.camera})
        self.notifier.send("alert", t.camera, f"alert|{t.camera}|{t.episode_ms}|{t.state}", self.payload(t))

    def payload(self, t: Transition) -> dict[str, Any]:
        """The webhook body: ``compliance`` is the figure judged, on ``basis`` (people or observations);
        both kinds of counts come along, and ``min_faces`` is the least count of that basis."""
        c = t.counts
        basis, ratio, _ = judged(c, self.s.tracking)
        return {"type": "alert", "camera": t.camera, "state": "firing" if t.state == FIRING else "resolved",
                "ts": t.at_ms, "time": iso(t.at_ms), "fired_ts": t.episode_ms,
                "basis": basis, "compliance": round(ratio or 0.0, 4),
                "people": c.people, "people_with_mask": c.people_with_mask,
                "people_without_mask": c.people_without_mask,
                "faces": c.faces, "with_mask": c.with_mask, "without_mask": c.without_mask,
                "window_s": self.s.alert_window_s, "threshold": self.s.alert_threshold,
                "min_faces": self.s.alert_min_faces}
