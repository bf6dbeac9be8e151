"""The web dashboard in real headless Chromium (Debian's ``chromium``, driven by Playwright's Python package).

Playwright launches the system browser by ``executable_path`` (no browser download: ``make test``
installs the ``chromium`` package as root, like the HTML report test). One node (fast config, chaos
enabled) and one browser serve the module.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sniperbot.observability.endpoints import read_endpoints
from tests.conftest import FAST_CONFIG, RunningNode, eventually, optional_import, sniperbot

sync_api, _why = optional_import("playwright.sync_api")
pytestmark = pytest.mark.skipif(sync_api is None, reason=_why)

# Offline and as root: no sandbox, and none of Chromium's own network traffic (it would dial out).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    """The system Chromium; missing is a failure (CI installs it), not a skip."""
    for candidate in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(candidate):
            return found
    pytest.fail("headless Chromium is needed for the dashboard test: apt-get install -y chromium")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[RunningNode, str, str]]:
    """(node, API URL, token) of a running node."""
    with tempfile.TemporaryDirectory(prefix="sb-", dir="/tmp") as d:
        config = Path(d) / "fast.toml"
        config.write_text(FAST_CONFIG)
        node = RunningNode(Path(d) / "run", config, ("--enable-chaos",))
        RunningNode.live.discard(node)  # module-scoped: stopped here, not after the first test
        try:
            node.wait_ready()
            url = eventually(lambda: read_endpoints(node.run_dir).get("api"), 60, what="api endpoint")
            yield node, url, (node.run_dir / "api.token").read_text().strip()
        finally:
            RunningNode.live.add(node)
            assert node.stop() == 0, node.log()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert sync_api is not None
    with sync_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _open(browser: Any, url: str, **context: Any) -> Any:
    page = browser.new_context(**context).new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    return page


def _cell(page: Any, actor: str, column: str) -> str:
    return str(page.locator(f'#tree tr[data-actor="{actor}"] td.{column}').inner_text())


def test_the_page_loads_with_the_token_and_shows_the_running_tree(browser: Any, served: Any) -> None:
    node, url, token = served
    page = _open(browser, f"{url}/?token={token}")
    try:
        for actor in node.workers():
            page.locator(f'#tree tr[data-actor="{actor}"] .state').filter(has_text="running").wait_for()
        assert _cell(page, "portfolio", "pid") == str(node.workers()["portfolio"]["pid"])
        assert "token=" not in page.url  # taken out of the address bar (history, screenshots, referrers)
        page.locator("#trading-state").filter(has_text="ACTIVE").wait_for()
        page.locator("#conn").filter(has_text="live").wait_for()
    finally:
        page.context.close()


def test_a_wrong_token_shows_the_token_form_and_no_data(browser: Any, served: Any) -> None:
    _, url, token = served
    page = _open(browser, f"{url}/?token=wrong-{token}")
    try:
        page.locator("#message").filter(has_text="refused").wait_for()
        page.locator("#token-form").wait_for(state="visible")
        assert page.locator("#tree tr").count() == 0
        page.fill("#token-input", token)  # entered once: then the stream connects
        page.click("#token-form button")
        page.locator('#tree tr[data-actor="portfolio"]').wait_for()
    finally:
        page.context.close()


def test_the_page_updates_when_an_actor_is_killed(browser: Any, served: Any) -> None:
    node, url, token = served
    page = _open(browser, f"{url}/?token={token}")
    try:
        page.locator('#tree tr[data-actor="feed.sim"] .state').filter(has_text="running").wait_for()
        before = int(_cell(page, "feed.sim", "incarnation"))
        restarts = int(_cell(page, "feed.sim", "restarts"))
        killed = sniperbot("admin", "--run-dir", str(node.run_dir), "chaos", "--actor", "feed.sim")
        assert killed.returncode == 0, killed.stderr
        # The restart reaches the page by itself (the WebSocket), no reload.
        page.wait_for_function(
            """([before]) => {
                const cell = document.querySelector('#tree tr[data-actor="feed.sim"] td.incarnation');
                return cell && Number(cell.textContent) > before;
            }""",
            arg=[before],
            timeout=30_000,
        )
        assert int(_cell(page, "feed.sim", "restarts")) > restarts
        assert node.workers()["feed.sim"]["incarnation"] > before
    finally:
        page.context.close()


def test_the_halt_button_halts_trading_after_confirmation(browser: Any, served: Any) -> None:
    node, url, token = served
    page = _open(browser, f"{url}/?token={token}")
    try:
        page.locator("#trading-state").filter(has_text="ACTIVE").wait_for()
        # Dismissed: nothing happens.
        page.once("dialog", lambda dialog: dialog.dismiss())
        page.click("#btn-halt")
        page.wait_for_timeout(500)
        assert node.admin("status")["trading_state"] == "ACTIVE"
        # Accepted: the node halts, and the page shows it.
        dialogs: list[str] = []

        def accept(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        page.once("dialog", accept)
        page.click("#btn-halt")
        eventually(lambda: node.admin("status")["trading_state"] == "HALTED", 30, what="HALTED")
        assert dialogs and "HALT" in dialogs[0]
        page.locator("#trading-state").filter(has_text="HALTED").wait_for()
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#btn-resume")
        eventually(lambda: node.admin("status")["trading_state"] == "ACTIVE", 30, what="ACTIVE again")
    finally:
        page.context.close()
        if node.admin("status")["trading_state"] != "ACTIVE":
            node.admin("resume")


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of raw pixels) of an 8-bit RGB(A) PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def test_a_phone_sized_screenshot_is_not_blank(browser: Any, served: Any, tmp_path: Path) -> None:
    _, url, token = served
    page = _open(
        browser, f"{url}/?token={token}", viewport={"width": 390, "height": 844}, device_scale_factor=1
    )
    try:
        page.locator('#tree tr[data-actor="portfolio"]').wait_for()
        page.locator("#trading-state").filter(has_text="ACTIVE").wait_for()
        # Laid out for the phone: nothing wider than the screen, the control buttons on screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        for button in ("#btn-halt", "#btn-reduce", "#btn-resume"):
            box = page.locator(button).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (button, box)
        shot = tmp_path / "phone.png"
        page.screenshot(path=str(shot))
        width, height, rows = _png_pixels(shot.read_bytes())
        assert (width, height) == (390, 844)
        colours = {row[i : i + 3] for row in rows[::4] for i in range(0, len(row), 12)}
        # A blank page has one colour; the dashboard has text, badges and buttons in many.
        assert len(colours) > 20, len(colours)
    finally:
        page.context.close()
