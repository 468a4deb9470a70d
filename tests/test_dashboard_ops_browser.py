"""The safety manager's first ten minutes, in a real headless browser (Playwright driving Debian's chromium).

What a person at the screen checks: the overview lists the site's recent violations and any firing alert,
unmissably; the violations page filters by camera and time and pages; the system page shows a failing
process of `maskwatch up` with its error, and the capture-to-result latency; a young camera's chart starts
at its first minute and marks the minute still filling; every time on every page reads one way, in the
viewer's time zone.

Screenshots go to the session's temporary folder; ``MASKWATCH_UPDATE_SCREENSHOTS=1`` also copies those of the
overview, violations and system pages at 1280x800 and 390x844 into docs/img/.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
import redis

from maskwatch.compliance import MINUTE_MS
from maskwatch.keys import Keys
from maskwatch.processes import FAILING, RUNNING, ProcessState, write_process_states
from maskwatch.settings import Settings
from tests.support.dashboard import Seen, Shot, add_camera, publish_latest, record, record_people, serve, set_status
from tests.support.waiting import wait_for
from worker.jobs.runner import Runner

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent (Debian: apt-get install chromium); browser tests need it",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="pip install playwright (the browser itself comes from Debian)")
expect = sync_api.expect

from tests.test_dashboard_browser import CHROMIUM_ARGS, DOCS_IMG  # noqa: E402  (after the skips above)

MIN = MINUTE_MS
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
# violations, minutes ago, oldest first: lobby every 8 minutes, gate every 13
LOBBY_AGES = list(range(144, 0, -8))  # 18
GATE_AGES = list(range(156, 0, -13))  # 12
# capture-to-result latency of the fresh camera's frames, ms; the violations' frames take 50 ms
LATENCIES = [350] * 40 + [2100] * 4
WORKER_ERROR = ("exit code 1: Traceback (most recent call last):\n  File \"worker/service.py\", line 88, in run\n"
                "maskwatch.exceptions.ModelError: no classifier at /models/mask.onnx: run `maskwatch models fetch`")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def seed(r: redis.Redis, keys: Keys, s: Settings, now: int) -> None:
    """Four cameras: lobby and gate with 30 violations over the last 2.5 hours, lobby's compliance alert firing
    (1 of 6 people masked in its window); platform-2 quiet; fresh, added 3 minutes ago, with a masked person in
    each of its minutes. `maskwatch up` runs the site and its worker-2 keeps failing."""
    for cam in ("lobby", "gate", "platform-2", "fresh"):
        add_camera(r, keys, cam)
        set_status(r, keys, cam, last_frame_ts=now - 500)
    shots = sorted([Shot("lobby", now - a * MIN, ["without_mask", "with_mask", "with_mask"], event=True)
                    for a in LOBBY_AGES] + [Shot("gate", now - a * MIN, ["without_mask"], event=True)
                                            for a in GATE_AGES], key=lambda shot: shot.ts)
    for shot in shots:  # one at a time: the events stream in capture order
        record(r, keys, s, [shot])
    record(r, keys, s, [Shot("fresh", now - 3 * MIN + i * 4000 // len(LATENCIES), ["with_mask"], latency_ms=ms)
                        for i, ms in enumerate(LATENCIES)])
    record_people(r, keys, [Seen("lobby", n, now - 2 * MIN, "with_mask" if n == 0 else "without_mask")
                            for n in range(6)])
    record_people(r, keys, [Seen("fresh", n, now - (3 - n) * MIN) for n in range(3)])
    Runner(s, r).alerts.evaluate(now)
    for i, cam in enumerate(("lobby", "gate", "fresh")):
        publish_latest(r, keys, cam, [["with_mask", "without_mask"], ["without_mask"], ["with_mask"]][i], seed=i)
    up = "up@site-1:4100"
    write_process_states(r, keys, [
        ProcessState("producer", RUNNING, pid=4101, since_ms=now - 20 * MIN, supervisor=up),
        ProcessState("worker-1", RUNNING, pid=4102, since_ms=now - 20 * MIN, supervisor=up),
        ProcessState("worker-2", FAILING, restarts=5, since_ms=now - 6 * MIN, last_error=WORKER_ERROR, supervisor=up),
        ProcessState("jobs", RUNNING, pid=4104, since_ms=now - 20 * MIN, supervisor=up),
        ProcessState("dashboard", RUNNING, pid=4105, since_ms=now - 20 * MIN, supervisor=up)])


@pytest.fixture
def site(settings: Settings, r: redis.Redis, keys: Keys) -> Iterator[str]:
    s = settings.override(event_throttle_s=0.001, alert_window_s=600, alert_threshold=0.8, alert_min_faces=5)
    seed(r, keys, s, int(time.time() * 1000))
    with serve(s) as url:
        yield url


def shoot(page, artifacts_dir: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    """A screenshot into the session's folder (and docs/img/ when asked): a desktop's whole page, a phone's screen."""
    page.screenshot(path=str(artifacts_dir / name), full_page=page.viewport_size["width"] > 800)
    if os.environ.get("MASKWATCH_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(artifacts_dir / name, DOCS_IMG / name)


def no_sideways_scroll(page) -> None:  # type: ignore[no-untyped-def]
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{page.url} scrolls sideways"


def wait_for_images(page, selector: str) -> None:  # type: ignore[no-untyped-def]
    """Until the images of the first screen have loaded (the others load lazily, as the page scrolls)."""
    page.wait_for_function(f"() => [...document.querySelectorAll({selector!r})]"
                           ".filter(i => { const r = i.parentElement.getBoundingClientRect();"
                           " return r.left < innerWidth && r.top < innerHeight; })"
                           ".every(i => i.complete && i.naturalWidth > 0)")


def test_overview_shows_recent_violations_and_the_firing_alert(browser, site: str, r: redis.Redis, keys: Keys,
                                                               settings: Settings, artifacts_dir: Path) -> None:
    page = browser.new_page(viewport=DESKTOP)
    page.goto(site + "/")
    strip = page.locator("#violations .event")
    expect(strip).to_have_count(12)
    newest = [(cam, a) for a, cam in sorted([(a, "lobby") for a in LOBBY_AGES] + [(a, "gate") for a in GATE_AGES])]
    assert [strip.nth(i).get_attribute("data-camera") for i in range(12)] == [cam for cam, _ in newest[:12]]
    expect(strip.first.locator(".cam")).to_have_text(newest[0][0])
    expect(strip.first.locator(".badge")).to_have_text(re.compile(r"^no mask \d+%$"))
    assert page.locator(".all-link").get_attribute("href") == "/violations"

    banner = page.locator(".banner-alert")
    expect(banner).to_have_count(1)
    expect(banner).to_contain_text("lobby: 17% of 6 people wore a mask over 10 min, below 80%")
    expect(banner.locator("time")).to_have_count(1)
    colours = banner.evaluate("el => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color]")
    red = [float(v) for v in re.findall(r"[\d.]+", colours[0])[:3]]
    assert red[0] > 150 and red[1] < 80 and red[2] < 80 and colours[1] == "rgb(255, 255, 255)", colours
    lobby, gate = page.locator('.tile[data-camera="lobby"]'), page.locator('.tile[data-camera="gate"]')
    expect(lobby).to_have_class(re.compile(r"\balerting\b"))
    expect(gate).not_to_have_class(re.compile(r"\balerting\b"))
    expect(lobby.locator("[data-alert]")).to_be_visible()
    expect(gate.locator("[data-alert]")).to_be_hidden()

    failing = page.locator(".banner-failing")
    expect(failing).to_have_count(1)
    expect(failing).to_contain_text("worker-2 is failing — 5 restarts")
    expect(failing.locator(".process-error")).to_contain_text("ModelError: no classifier at /models/mask.onnx")
    wait_for_images(page, "#violations img")
    shoot(page, artifacts_dir, "overview-desktop.png")

    now = int(time.time() * 1000)
    record(r, keys, settings.override(event_throttle_s=0.001), [Shot("gate", now, ["without_mask"], event=True)])
    expect(strip.first).to_have_attribute("data-camera", "gate", timeout=10_000)
    expect(strip).to_have_count(12)
    page.close()

    phone = browser.new_page(**PHONE)
    phone.goto(site + "/")
    expect(phone.locator(".banner-alert")).to_be_visible()
    expect(phone.locator("#violations .event")).to_have_count(12)
    no_sideways_scroll(phone)
    wait_for_images(phone, "#violations img")
    shoot(phone, artifacts_dir, "overview-phone.png")
    phone.close()


def test_violations_page_filters_by_camera_and_time_and_pages(browser, site: str, artifacts_dir: Path) -> None:
    page = browser.new_page(viewport=DESKTOP)
    page.goto(site + "/violations")
    cards = page.locator("#events .event")
    expect(cards).to_have_count(24)
    expect(page.locator("#summary")).to_have_text("24 newest violations at all cameras")
    first_page = [cards.nth(i).get_attribute("data-event") for i in range(24)]
    wait_for_images(page, "#events img")
    shoot(page, artifacts_dir, "violations-desktop.png")

    page.get_by_role("link", name="Older →").click()
    expect(cards).to_have_count(6)
    second_page = [cards.nth(i).get_attribute("data-event") for i in range(6)]
    assert not set(first_page) & set(second_page), "a violation on two pages"
    expect(page.get_by_role("link", name="Older →")).to_be_hidden()
    page.get_by_role("link", name="← Newest").click()
    expect(cards).to_have_count(24)

    page.get_by_label("Camera").select_option("gate")
    page.get_by_role("button", name="Show").click()
    expect(cards).to_have_count(12)
    assert {cards.nth(i).get_attribute("data-camera") for i in range(12)} == {"gate"}
    assert parse_qs(urlparse(page.url).query)["camera"] == ["gate"]
    expect(page.get_by_label("Camera")).to_have_value("gate")  # the form keeps its filters
    expect(page.locator("#summary")).to_have_text("12 newest violations at gate")

    page.get_by_label("Captured").select_option("1h")
    page.get_by_role("button", name="Show").click()
    expect(cards).to_have_count(sum(a < 60 for a in GATE_AGES))  # 4: 13, 26, 39 and 52 minutes ago
    expect(page.locator("#summary")).to_have_text("4 newest violations at gate in the last 1h")
    page.close()

    phone = browser.new_page(**PHONE)
    phone.goto(site + "/violations")
    expect(phone.locator("#events .event")).to_have_count(24)
    no_sideways_scroll(phone)
    wait_for_images(phone, "#events img")
    shoot(phone, artifacts_dir, "violations-phone.png")
    phone.close()


def test_system_page_shows_the_failing_process_and_latency(browser, site: str, artifacts_dir: Path) -> None:
    page = browser.new_page(viewport=DESKTOP)
    page.goto(site + "/system")
    rows = page.locator("#processes tbody tr")
    expect(rows).to_have_count(5)
    worker = page.locator('#processes tr[data-process="worker-2"]')
    expect(worker.locator(".status")).to_have_text("failing")
    expect(worker).to_contain_text("ModelError: no classifier at /models/mask.onnx")
    expect(page.locator('#processes tr[data-process="worker-1"] .status')).to_have_text("running")
    # 44 frames of fresh (40 at 350 ms, 4 at 2.1 s) and 30 violation frames at 50 ms
    expect(page.locator('[data-stat="latency-p50"] dd')).to_have_text("350 ms")
    expect(page.locator('[data-stat="latency-p95"] dd')).to_have_text("2.1 s")
    fresh = page.locator("#flows tbody tr", has_text="fresh")
    columns = page.locator("#flows thead th").all_inner_texts()
    expect(fresh.locator("td").nth(columns.index("LATENCY P95"))).to_have_text("2.1 s")
    # no worker is alive, and the site runs under `maskwatch up`: the advice says so
    expect(page.locator('[data-advice="up"]')).to_be_visible()
    expect(page.locator('[data-advice="alone"]')).to_be_hidden()
    expect(page.locator("#no-workers")).to_contain_text("maskwatch up --workers N")
    shoot(page, artifacts_dir, "system-desktop.png")
    page.close()

    phone = browser.new_page(**PHONE)
    phone.goto(site + "/system")
    expect(phone.locator('#processes tr[data-process="worker-2"] .status')).to_have_text("failing")
    no_sideways_scroll(phone)
    shoot(phone, artifacts_dir, "system-phone.png")
    phone.close()


def test_a_young_cameras_chart_starts_at_its_data_and_marks_the_minute_still_filling(browser, site: str,
                                                                                    r: redis.Redis,
                                                                                    keys: Keys) -> None:
    # an unmasked person in the minute still filling (0% so far), with time to read the page before it ends
    wait_for(lambda: time.time() % 60 < 40, 25, "a minute with 20 s left", every=0.2)
    record_people(r, keys, [Seen("fresh", 9, int(time.time() * 1000), "without_mask")])
    page = browser.new_page(viewport=DESKTOP)
    page.goto(site + "/cameras/fresh")
    chart = page.locator("#chart[data-rendered=true]")
    expect(chart).to_have_attribute("data-partial", "true")
    series = page.evaluate("fetch('/api/cameras/fresh/compliance?window=1h').then(r => r.json())")
    assert series["data_since"] is not None
    # the 1 h window holds 61 steps, the chart shows those from the first counted minute on: 4 or 5 of them
    assert int(chart.get_attribute("data-points")) in (61, 62)
    assert int(chart.get_attribute("data-from")) == series["data_since"] // MIN * MIN
    assert int(chart.get_attribute("data-shown")) in (4, 5)
    # the headline leaves the minute still filling (one unmasked person so far) out: 3 of 3 masked
    expect(page.locator("[data-chart-now] .v")).to_have_text("100%")
    expect(page.locator("[data-chart-now] .l")).to_contain_text("of 3 people")
    box = chart.bounding_box()
    chart.hover(position={"x": box["width"] - 20, "y": box["height"] / 2})  # over the last step
    expect(page.locator("#chart-tip")).to_contain_text("(still filling) · people 0% of 1")
    page.close()


def _moment(iso: str, zone: str) -> str:
    """The pages' one format, as Intl.DateTimeFormat writes it for en-GB: "Wed 15 Nov, 07:13:20"."""
    t = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    return f"{t:%a} {t.day} {t:%b}, {t:%H:%M:%S}"


def test_every_time_reads_one_way_in_the_viewers_zone(browser, site: str) -> None:
    context = browser.new_context(viewport=DESKTOP, timezone_id="Asia/Tokyo", locale="en-GB")
    page = context.new_page()
    for path, least in (("/", 13), ("/violations", 24), ("/system", 5), ("/cameras/lobby", 2), ("/jobs", 1)):
        page.goto(site + path)
        page.wait_for_function(f"() => document.querySelectorAll('main time[datetime]').length >= {least}")
        shown = page.locator("main time[datetime]").evaluate_all(
            "els => els.map(e => [e.getAttribute('datetime'), e.textContent, e.title])")
        assert len(shown) >= least, path
        for iso, text, title in shown:
            assert text == _moment(iso, "Asia/Tokyo"), (path, iso, text)
            assert title.endswith("GMT+9"), (path, title)
    context.close()
