"""The dashboard in a real headless browser: Playwright driving Debian's chromium (never a downloaded one).

Screenshots go to the session's temporary folder, ``screenshots0/`` under pytest's base temp
(``--basetemp DIR`` puts it where you want). The tests never write into the checkout unless asked:
``MASKWATCH_UPDATE_SCREENSHOTS=1`` also copies the overview into docs/img/dashboard.png, the
README's picture.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from maskwatch.codec import Frame, encode_frame
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.streams import ensure_group
from tests.conftest import ROOT
from tests.support.dashboard import (
    Shot,
    add_camera,
    publish_latest,
    record,
    serve,
    set_status,
)
from worker.heartbeat import Heartbeat, Throughput

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DOCS_IMG = ROOT / "docs" / "img" / "dashboard.png"
MIN = 60_000

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent (Debian: apt-get install chromium); browser tests need it",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="pip install playwright (the browser itself comes from Debian)")
expect = sync_api.expect

# Share of masked faces per camera; lobby's last 15 minutes are fixed so the test knows the figure.
SITE = {"gate": 0.97, "lobby": 0.8, "platform-2": 0.55, "yard": None}


def _labels(rng: np.random.Generator, share: float, n: int) -> list[str]:
    return ["with_mask" if rng.random() < share else "without_mask" for _ in range(n)]


def seed_site(r: redis.Redis, keys: Keys, settings: Settings, now: int) -> dict[str, int]:
    """A day of statistics for four cameras; lobby's last hour holds exactly 9 of 12 faces masked, in three frames
    at 3, 6 and 9 minutes ago (two of them with a violation event), and its day before that 68 frames of 6 faces.
    yard is online but quiet: nothing has moved there for 5 minutes, its frames are counted idle."""
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
    set_status(r, keys, "gate", last_frame_ts=now - 400)
    set_status(r, keys, "lobby", last_frame_ts=now - 900)
    set_status(r, keys, "platform-2", "reconnecting", last_frame_ts=now - 42_000,
               last_error="cannot open rtsp://admin:***@10.0.0.9/stream1")
    set_status(r, keys, "yard", last_frame_ts=now - 1500, idle=1500, last_motion_ts=now - 5 * MIN)
    for i, cam in enumerate(("gate", "lobby", "platform-2")):
        publish_latest(r, keys, cam, [["with_mask", "with_mask"], ["with_mask", "without_mask", "with_mask"],
                                      ["without_mask"]][i], seed=i)
    return {cam: sum(1 for s in shots if s.cam == cam) for cam in SITE}


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


def test_overview_shows_the_stats_and_updates_without_reload(browser, site: str, r: redis.Redis, keys: Keys,
                                                             settings: Settings, artifacts_dir: Path) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(site + "/")
    lobby = _tile(page, "lobby")
    expect(lobby.locator('[data-window="15m"]')).to_have_text("75%")
    expect(lobby.locator('[data-faces="15m"]')).to_have_text("12")
    expect(lobby.locator("[data-status]")).to_have_text("online")
    expect(_tile(page, "yard").locator('[data-window="15m"]')).to_have_text("–")
    expect(_tile(page, "platform-2").locator("[data-status]")).to_have_text("reconnecting")
    yard = _tile(page, "yard")
    expect(yard.locator("[data-status]")).to_have_text("quiet")  # online, nothing moving: not offline
    expect(yard.locator("[data-age]")).to_have_text("no motion for 5 min")
    expect(page.locator("#live")).to_have_text("live")
    # warning colour: 75% sits between the warn (70%) and good (90%) thresholds
    assert "grade-warn" in lobby.get_attribute("class")
    _wait_for_frames(page)
    page.screenshot(path=str(artifacts_dir / "dashboard.png"))
    if os.environ.get("MASKWATCH_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(artifacts_dir / "dashboard.png", DOCS_IMG)

    page.evaluate("window.__sameDocument = true")
    record(r, keys, settings, [Shot("lobby", int(time.time() * 1000), ["without_mask"] * 4)])
    expect(lobby.locator('[data-window="15m"]')).to_have_text("56%", timeout=10_000)  # 9 of 16
    expect(lobby.locator("[data-last]")).to_contain_text("4 faces, 4 without mask")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of updating"
    assert "grade-bad" in lobby.get_attribute("class")
    page.close()


def test_overview_fits_a_phone(browser, site: str, artifacts_dir: Path) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page.goto(site + "/")
    expect(_tile(page, "lobby").locator('[data-window="15m"]')).to_have_text("75%")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways on a phone"
    page.screenshot(path=str(artifacts_dir / "dashboard-phone.png"), full_page=True)
    page.close()


def test_camera_page_draws_the_chart_and_violations(browser, site: str, r: redis.Redis, keys: Keys,
                                                    settings: Settings, artifacts_dir: Path) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(site + "/cameras/lobby")
    chart = page.locator("#chart[data-rendered=true]")
    expect(chart).to_have_attribute("data-faces", "12")  # 1 h window: the three frames of 4 faces
    assert int(chart.get_attribute("data-points")) in (61, 62)
    coloured = page.evaluate("""() => {
        const c = document.getElementById('chart');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] > 150 && d[i + 2] < 100) n++;
        return n; }""")  # amber dots: every step of lobby is at 75%, a warning
    assert coloured > 50, "no compliance points drawn"
    expect(page.locator(".event")).to_have_count(2)
    page.wait_for_function("() => [...document.querySelectorAll('.event img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    settings_text = page.locator("#settings").inner_text()
    assert "admin:***@10.0.0.5" in settings_text and "hunter2" not in page.content()
    page.screenshot(path=str(artifacts_dir / "dashboard-camera.png"), full_page=True)

    page.get_by_role("button", name="24h").click()
    expect(chart).to_have_attribute("data-faces", "420")  # and the day's 68 frames of 6 faces
    assert int(chart.get_attribute("data-points")) in (97, 98) and page.url.endswith("#24h")

    record(r, keys, settings.override(event_throttle_s=0.001),
           [Shot("lobby", int(time.time() * 1000), ["without_mask"], event=True)])
    expect(page.locator(".event")).to_have_count(3, timeout=10_000)
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
