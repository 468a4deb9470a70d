"""The dashboard in a real headless browser: Playwright driving Debian's chromium (never a downloaded one).

Screenshots go to the session's temporary folder, ``screenshots0/`` under pytest's base temp
(``--basetemp DIR`` puts it where you want). The tests never write into the checkout unless asked:
``MASKWATCH_UPDATE_SCREENSHOTS=1`` also copies the overview into docs/img/dashboard.png (the
README's picture) and the camera page into docs/img/dashboard-camera.png.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import redis

from maskwatch.codec import Frame, encode_frame
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.streams import ensure_group
from tests.conftest import ROOT
from tests.support.dashboard import (
    Seen,
    Shot,
    add_camera,
    publish_latest,
    record,
    record_people,
    serve,
    set_status,
)
from worker.heartbeat import Heartbeat, Throughput

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DOCS_IMG = ROOT / "docs" / "img"
MIN = 60_000

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent (Debian: apt-get install chromium); browser tests need it",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="pip install playwright (the browser itself comes from Debian)")
expect = sync_api.expect

# Share of masked faces and people per camera; lobby's last 15 minutes are fixed so the test knows the figures.
SITE = {"gate": 0.97, "lobby": 0.8, "platform-2": 0.55, "yard": None}
# lobby's people in the last 15 minutes, newest first: minutes ago, label, best look stored (unmasked ones only,
# as the default privacy setting keeps), seconds seen
LOBBY_PEOPLE = [(1, "with_mask", False, 6), (2, "without_mask", True, 48), (4, "with_mask", False, 3),
                (7, "with_mask", False, 9), (11, "without_mask", True, 2)]


def _labels(rng: np.random.Generator, share: float, n: int) -> list[str]:
    return ["with_mask" if rng.random() < share else "without_mask" for _ in range(n)]


def _people(rng: np.random.Generator, now: int) -> list[Seen]:
    """A day of people at gate and platform-2 (one every 7 minutes), and lobby's last 15 minutes as LOBBY_PEOPLE."""
    people = [Seen("lobby", 100 + i, now - age * MIN - 20_000, label, duration_ms=seconds * 1000, snapshot=stored,
                   confidence=0.93) for i, (age, label, stored, seconds) in enumerate(LOBBY_PEOPLE)]
    for cam in ("gate", "platform-2"):
        for n, age_min in enumerate(range(1435, 0, -7)):
            label = _labels(rng, SITE[cam] or 0, 1)[0]
            people.append(Seen(cam, n, now - age_min * MIN, label, snapshot=label == "without_mask"))
    return people


def seed_site(r: redis.Redis, keys: Keys, settings: Settings, now: int) -> None:
    """A day of statistics for four cameras; lobby's last hour holds exactly 9 of 12 faces masked, in three frames
    at 3, 6 and 9 minutes ago (two of them with a violation event), and its day before that 68 frames of 6 faces;
    its last 15 minutes counted the 5 people of LOBBY_PEOPLE, 3 of them masked. yard is online but quiet: nothing
    has moved there for 5 minutes, its frames are counted idle."""
    rng = np.random.default_rng(7)
    shots = []
    for cam, share in SITE.items():
        add_camera(r, keys, cam)
        if share is None:
            continue
        for age_min in range(1430, 70, -20):  # the day before the last hour, coarsely
            shots.append(Shot(cam, now - age_min * MIN, _labels(rng, share - 0.1 * np.sin(age_min / 200), 6)))
        for age_min in range(20, 0, -1):  # the last 20 minutes, every minute
            if cam == "lobby":
                labels = ["with_mask"] * 3 + ["without_mask"] if age_min in (3, 6, 9) else []
            else:
                labels = _labels(rng, share, int(rng.integers(1, 5)))
            shots.append(Shot(cam, now - age_min * MIN + 5_000, labels, event=age_min in (3, 9)))
    record(r, keys, settings, shots)
    record_people(r, keys, _people(rng, now))
    set_status(r, keys, "gate", last_frame_ts=now - 400)
    set_status(r, keys, "lobby", last_frame_ts=now - 900)
    set_status(r, keys, "platform-2", "reconnecting", last_frame_ts=now - 42_000,
               last_error="cannot open rtsp://admin:***@10.0.0.9/stream1")
    set_status(r, keys, "yard", last_frame_ts=now - 1500, idle=1500, last_motion_ts=now - 5 * MIN)
    for i, cam in enumerate(("gate", "lobby", "platform-2")):
        publish_latest(r, keys, cam, [["with_mask", "with_mask"], ["with_mask", "without_mask", "with_mask"],
                                      ["without_mask"]][i], seed=i)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def site(settings: Settings, r: redis.Redis, keys: Keys) -> Iterator[str]:
    s = settings.override(event_throttle_s=0.001)
    seed_site(r, keys, s, int(time.time() * 1000))
    with serve(s) as url:
        yield url


def _tile(page, cam: str):  # type: ignore[no-untyped-def]
    return page.locator(f'.tile[data-camera="{cam}"]')


def _wait_for_frames(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function("() => [...document.querySelectorAll('.tile img')].filter(i => !i.hidden)"
                           ".every(i => i.complete && i.naturalWidth > 0) && "
                           "document.querySelectorAll('.tile img:not([hidden])').length === 3")


def test_overview_shows_people_first_and_updates_without_reload(browser, site: str, r: redis.Redis, keys: Keys,
                                                                settings: Settings, artifacts_dir: Path) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(site + "/")
    lobby = _tile(page, "lobby")
    expect(lobby.locator('[data-people-window="15m"]')).to_have_text("60%")  # 3 of 5 people masked
    expect(lobby.locator('[data-people="15m"]')).to_have_text("5")
    expect(lobby.locator('[data-people-without="15m"]')).to_have_text("2")
    expect(lobby.locator('[data-people-without="15m"]')).to_have_class("unmasked")  # red: someone went unmasked
    expect(lobby.locator('[data-window="15m"]')).to_have_text("75%")  # observations: 9 of 12 faces
    expect(lobby.locator('[data-faces="15m"]')).to_have_text("12")
    expect(lobby.locator("[data-status]")).to_have_text("online")
    expect(_tile(page, "yard").locator('[data-people-window="15m"]')).to_have_text("–")
    expect(_tile(page, "platform-2").locator("[data-status]")).to_have_text("reconnecting")
    yard = _tile(page, "yard")
    expect(yard.locator("[data-status]")).to_have_text("quiet")  # online, nothing moving: not offline
    expect(yard.locator("[data-age]")).to_have_text("no motion for 5 min")
    expect(page.locator("#live")).to_have_text("live")
    # the headline is people: every camera's people of the last 15 minutes together
    site_people = page.locator('[data-site-count="people"]')
    assert int(site_people.inner_text()) >= 5
    assert page.locator('[data-site-people="15m"]').inner_text().endswith("%")
    # bad colour: 60% of people is below the warn threshold (70%), though the observations read 75%
    assert "grade-bad" in lobby.get_attribute("class")
    assert "grade-warn" in lobby.locator('[data-window="15m"]').get_attribute("class")
    _wait_for_frames(page)
    page.screenshot(path=str(artifacts_dir / "dashboard.png"))
    if os.environ.get("MASKWATCH_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(artifacts_dir / "dashboard.png", DOCS_IMG / "dashboard.png")

    page.evaluate("window.__sameDocument = true")
    now = int(time.time() * 1000)
    record(r, keys, settings, [Shot("lobby", now, ["without_mask"] * 4)])
    record_people(r, keys, [Seen("lobby", 900 + i, now, "with_mask") for i in range(3)])
    expect(lobby.locator('[data-window="15m"]')).to_have_text("56%", timeout=10_000)  # 9 of 16 faces
    expect(lobby.locator('[data-people-window="15m"]')).to_have_text("75%", timeout=10_000)  # 6 of 8 people
    expect(lobby.locator("[data-last]")).to_contain_text("4 faces, 4 without mask")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of updating"
    assert "grade-warn" in lobby.get_attribute("class")
    page.close()


def test_overview_fits_a_phone(browser, site: str, artifacts_dir: Path) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page.goto(site + "/")
    expect(_tile(page, "lobby").locator('[data-people-window="15m"]')).to_have_text("60%")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways on a phone"
    page.screenshot(path=str(artifacts_dir / "dashboard-phone.png"), full_page=True)
    page.goto(site + "/cameras/lobby")
    expect(page.locator(".person")).to_have_count(5)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the camera page scrolls sideways on a phone"
    page.close()


def test_camera_page_shows_people_first_then_the_chart_and_violations(browser, site: str, r: redis.Redis, keys: Keys,
                                                                     settings: Settings, artifacts_dir: Path) -> None:
    # a viewer in Tokyo reading a camera anywhere: times show in the viewer's zone, one format
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, timezone_id="Asia/Tokyo", locale="en-GB")
    page = context.new_page()
    page.goto(site + "/cameras/lobby")
    head = page.locator(".camera-head")
    expect(head.locator('[data-people-window="15m"]')).to_have_text("60%")
    expect(head.locator('[data-people-without="15m"]')).to_have_text("2")
    expect(head.locator('[data-window="15m"] .v')).to_have_text("75%")  # observations: 9 of 12 faces

    # the person timeline: unmasked first (their best looks stored), then the masked (no image kept), newest first
    people = page.locator(".person")
    expect(people).to_have_count(5)
    labels = [people.nth(i).get_attribute("data-label") for i in range(5)]
    assert labels == ["without_mask"] * 2 + ["with_mask"] * 3
    first = people.first
    expect(first.locator(".label")).to_have_text("no mask 93%")
    expect(first.locator(".seen")).to_have_text("seen 48 s")
    expect(people.nth(1).locator(".seen")).to_have_text("seen 2 s")
    page.wait_for_function("() => [...document.querySelectorAll('.person img')]"
                           ".every(i => i.complete && i.naturalWidth > 0) && "
                           "document.querySelectorAll('.person img').length === 2")
    for i in (2, 3, 4):
        expect(people.nth(i).locator(".noshot")).to_have_text("no image: not stored by the privacy setting")
    shown_at = first.locator("time")
    last_ts = int(datetime.fromisoformat(shown_at.get_attribute("datetime").replace("Z", "+00:00")).timestamp() * 1000)
    tokyo = datetime.fromtimestamp(last_ts / 1000, ZoneInfo("Asia/Tokyo"))
    assert tokyo.strftime("%H:%M:%S") in shown_at.inner_text() and shown_at.get_attribute("title").endswith("GMT+9")

    chart = page.locator("#chart[data-rendered=true]")
    expect(chart).to_have_attribute("data-faces", "12")  # 1 h window: the three frames of 4 faces
    expect(chart).to_have_attribute("data-people", "5")
    assert int(chart.get_attribute("data-points")) in (61, 62)
    coloured = page.evaluate("""() => {
        const c = document.getElementById('chart');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] < 130 && d[i + 2] < 120) n++;
        return n; }""")  # red dots: the minutes in which an unmasked person left read 0% by people
    assert coloured > 30, "no people compliance points drawn"
    events = page.locator(".event")
    expect(events).to_have_count(2)
    page.wait_for_function("() => [...document.querySelectorAll('.event img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    assert events.first.locator("time").get_attribute("title").endswith("GMT+9")
    settings_text = page.locator("#settings").inner_text()
    assert "admin:***@10.0.0.5" in settings_text and "hunter2" not in page.content()
    page.screenshot(path=str(artifacts_dir / "dashboard-camera.png"), full_page=True)
    if os.environ.get("MASKWATCH_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(artifacts_dir / "dashboard-camera.png", DOCS_IMG / "dashboard-camera.png")

    page.get_by_role("button", name="24h").click()
    expect(chart).to_have_attribute("data-faces", "420")  # and the day's 68 frames of 6 faces
    assert int(chart.get_attribute("data-points")) in (97, 98) and page.url.endswith("#24h")

    # a new person appears in the strip without a reload; a new violation too
    now = int(time.time() * 1000)
    record_people(r, keys, [Seen("lobby", 990, now, "without_mask", snapshot=True)])
    expect(people).to_have_count(6, timeout=10_000)
    expect(people.first).to_have_attribute("data-person", "lobby-990")
    record(r, keys, settings.override(event_throttle_s=0.001), [Shot("lobby", now, ["without_mask"], event=True)])
    expect(events).to_have_count(3, timeout=10_000)
    context.close()


def test_older_people_page_in(browser, site: str, r: redis.Redis, keys: Keys) -> None:
    now = int(time.time() * 1000)
    record_people(r, keys, [Seen("yard", n, now - n * 1000, "with_mask") for n in range(1, 31)])
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(site + "/cameras/yard")
    people = page.locator(".person")
    expect(people).to_have_count(24)
    page.get_by_role("button", name="Older people").click()
    expect(people).to_have_count(30)
    expect(page.get_by_role("button", name="Older people")).to_be_hidden()
    assert people.last.get_attribute("data-person") == "yard-30"
    page.close()


def test_system_page_lists_workers(browser, site: str, r: redis.Redis, keys: Keys, artifacts_dir: Path) -> None:
    ensure_group(r, keys, "gate")
    for seq in range(3):  # gate's frames wait for a worker: its lag, and the site's
        r.xadd(keys.frames("gate"), encode_frame(Frame("gate", 9000 + seq, int(time.time() * 1000), 8, 8, b"x")))
    beat = Heartbeat(r, keys, "gpu-node-1", {"device": "cuda:0", "runtime": "torch", "batch_size": 32},
                     Throughput(frames=1234, crops=3000), ttl_ms=5000, interval_s=0.05)
    beat.start()
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(site + "/system")
        row = page.locator("#workers tbody tr")
        expect(row).to_have_count(1, timeout=10_000)
        expect(row.first).to_contain_text("cuda:0")
        expect(page.locator('[data-stat="workers"] dd')).to_have_text("1")
        expect(page.locator("#flows tbody tr")).to_have_count(4)
        expect(page.locator('[data-stat="lag"] dd')).to_have_text("3")
        gate = page.locator("#flows tbody tr", has_text="gate")
        lag_column = page.locator("#flows thead th").all_inner_texts().index("LAG")
        expect(gate.locator("td").nth(lag_column)).to_have_text("3")
        expect(page.locator("#flows tbody tr", has_text="yard").locator(".status")).to_have_text("quiet")
        page.screenshot(path=str(artifacts_dir / "dashboard-system.png"), full_page=True)
        page.close()
    finally:
        beat.stop()
        beat.join(2)
