"""The HTML report: self-contained, downsampled, and rendered for real by headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sniperbot.backtest.metrics import Trade, compute_metrics
from sniperbot.backtest.report import MAX_POINTS, build_report, downsample_minmax, write_report
from sniperbot.data import OHLCV

MINUTE = 60_000_000_000
T0 = 1_747_699_200 * 1_000_000_000  # 2025-05-20 00:00 UTC


def chromium() -> str:
    """The headless browser; missing is a failure (CI must install it), not a skip."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    pytest.fail(
        "headless Chromium is needed to check that the HTML report renders, and none was found "
        "(looked for $CHROMIUM, chromium, chromium-browser, google-chrome). On Debian/Ubuntu: "
        "apt-get install -y chromium"
    )


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def backtest(n: int = 20_000, seed: int = 7) -> tuple[OHLCV, np.ndarray, list[Trade], np.ndarray]:
    """A small synthetic market and a strategy that trades it every 400 bars."""
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    spread = np.abs(rng.normal(0, 5, n))
    bars = OHLCV(
        T0 + np.arange(n, dtype=np.int64) * MINUTE,
        open_,
        np.maximum(open_, close) + spread,
        np.minimum(open_, close) - spread,
        close,
        rng.uniform(1, 10, n),
        symbol="BTC/USDT",
    )
    cash, trades = 10_000.0, []
    equity = np.full(n, cash)
    in_position = np.zeros(n, dtype=bool)
    for k, entry in enumerate(range(50, n - 300, 400)):
        exit_ = entry + 150 + (k % 3) * 50
        side = "long" if k % 4 else "short"
        qty = cash / open_[entry]
        sign = 1 if side == "long" else -1
        fees = 0.001 * qty * (open_[entry] + open_[exit_])
        pnl = sign * qty * (open_[exit_] - open_[entry]) - fees
        trades.append(
            Trade(
                int(bars.time_ns[entry]),
                int(bars.time_ns[exit_]),
                open_[entry],
                open_[exit_],
                qty,
                side,
                pnl,
                fees,
            )
        )
        equity[entry:exit_] = cash + sign * qty * (close[entry:exit_] - open_[entry])
        in_position[entry:exit_] = True
        cash += pnl
        equity[exit_:] = cash
    return bars, equity, trades, in_position


def test_downsample_keeps_extremes_in_order() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, 130_708)
    values[77_777] = 50.0  # a spike an every-n-th sample would miss
    values[12_345] = -50.0
    keep = downsample_minmax(values, 4_000)
    assert len(keep) <= 4_000
    assert np.all(np.diff(keep) > 0)
    assert keep[0] == 0 and keep[-1] == len(values) - 1
    assert 77_777 in keep and 12_345 in keep
    np.testing.assert_array_equal(downsample_minmax(values[:500], 4_000), np.arange(500))


def test_report_is_self_contained_and_downsampled(tmp_path: Path) -> None:
    bars, equity, trades, in_position = backtest(n=130_708)
    metrics = compute_metrics(bars.time_ns, equity, trades, in_position)
    path = write_report(tmp_path / "r.html", bars, equity, trades, metrics, "SMA <10/30> & co")
    text = path.read_text()
    assert "<title>SMA &lt;10/30&gt; &amp; co</title>" in text
    # Nothing to fetch: no external scripts, styles, images or fonts.
    assert not re.search(r"""(src|href)\s*=|<link|@import|url\((?!#)|fetch\(|XMLHttpRequest""", text)
    assert set(re.findall(r"https?://[^\s\"'<>)]+", text)) <= {"http://www.w3.org/2000/svg"}
    data = json.loads(
        re.search(r'<script id="report-data" type="application/json">(.*?)</script>', text, re.S)[1]
    )
    for series in ("price", "equity", "drawdown"):
        assert 1_000 < len(data[series]["t"]) <= MAX_POINTS
    assert len(data["trades"]) == len(trades) == data["tradeCount"]
    assert min(data["drawdown"]["v"]) == pytest.approx(metrics.max_drawdown_pct)
    assert max(data["price"]["v"]) == pytest.approx(bars.close.max())
    assert path.stat().st_size < 600_000


def test_script_end_tag_in_the_data_cannot_break_out(tmp_path: Path) -> None:
    bars, equity, trades, in_position = backtest(n=1_000)
    metrics = compute_metrics(bars.time_ns, equity, trades, in_position)
    text = build_report(bars, equity, trades, metrics, "</script><script>alert(1)</script>")
    assert "</script><script>alert(1)" not in text
    with pytest.raises(ValueError, match="equity has 3 values for 1000 bars"):
        build_report(bars, equity[:3], trades, metrics, "x")


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    bars, equity, trades, in_position = backtest()
    metrics = compute_metrics(bars.time_ns, equity, trades, in_position)
    extra = {**metrics.to_dict(json_safe=True), "bars": len(bars), "elapsed_s": 0.25}
    path = write_report(tmp_path / "report.html", bars, equity, trades, extra, "Synthetic backtest")

    dom = run_chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", path.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    body = re.search(r"<body[^>]*>", html)[0]
    assert 'data-rendered="ok"' in body, f"the report's script did not finish: {body}"
    assert "data-error" not in body, body
    # The script drew three charts, each with a real line.
    charts = re.findall(r'<svg class="chart"[^>]*data-series="(\w+)"', html)
    assert charts == ["price", "equity", "drawdown"]
    points = [int(p) for p in re.findall(r'<path class="line"[^>]*data-points="(\d+)"', html)]
    assert len(points) == 3 and all(p > 1_000 for p in points), points
    # Every entry and exit is marked on the price chart.
    marked = re.search(r'<g class="markers" data-count="(\d+)"', html)
    assert marked and int(marked[1]) == 2 * len(trades)
    assert len(re.findall(r'class="metric" data-key=', html)) >= 16
    assert 'data-key="elapsed_s"' in html
    assert len(re.findall(r"<tr><td>\d+</td>", html)) == len(trades)
    assert f"Trades ({len(trades)})" in html

    # A screenshot is far from blank: compare with the same browser's blank page.
    shot = tmp_path / "report.png"
    run = run_chromium(tmp_path, "--window-size=1400,1800", f"--screenshot={shot}", path.as_uri())
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    blank_page = tmp_path / "blank.html"
    blank_page.write_text("<html><body style='background:#0f1419'></body></html>")
    blank = tmp_path / "blank.png"
    run_chromium(tmp_path, "--window-size=1400,1800", f"--screenshot={blank}", blank_page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20 * blank.stat().st_size, (shot.stat().st_size, blank.stat().st_size)
