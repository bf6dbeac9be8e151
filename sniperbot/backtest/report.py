"""A backtest's HTML report: one self-contained file, no network.

The file holds its data (downsampled series, trades, metrics) as inline JSON and draws
SVG charts with inline JavaScript: price with trade markers, equity, drawdown, all on
one time axis (drag across a chart to zoom, double-click to reset, hover for values),
then the metrics and the trade list. Nothing is loaded from anywhere else, so the file
can be mailed, archived, or opened offline.

Long series are downsampled per bucket, keeping each bucket's minimum and maximum in
time order (``downsample_minmax``): 130,000 one-minute bars become at most
``max_points`` points (4,000 by default) while every spike and every drawdown trough
stays visible, which a plain every-n-th sample would lose.

The report of an optimisation (``sniperbot optimize --report``) is that of its best point plus
a heatmap of the metric over two parameters (``heatmap``, from
:func:`sniperbot.optimize.heatmap.heatmap`): one SVG cell per pair of values, coloured from
worst (red) to best (green) by rank among the cells (an outlier does not wash out the rest),
its score written in it, the best cell outlined, empty cells grey.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sniperbot.backtest.metrics import Metrics, TradeLike, drawdown
from sniperbot.data.ohlcv import OHLCV, format_ns

MAX_POINTS = 4_000
MAX_TRADE_MARKERS = 20_000

# (key, label, format) in display order; formats: pct, num, ratio, int, days, money.
METRIC_LABELS: tuple[tuple[str, str, str], ...] = (
    ("final_equity", "Final equity", "money"),
    ("total_return_pct", "Total return", "pct"),
    ("cagr_pct", "CAGR", "pct"),
    ("max_drawdown_pct", "Max drawdown", "pct"),
    ("max_drawdown_duration_days", "Longest drawdown", "days"),
    ("sharpe", "Sharpe", "ratio"),
    ("sortino", "Sortino", "ratio"),
    ("calmar", "Calmar", "ratio"),
    ("volatility_pct", "Volatility (ann.)", "pct"),
    ("trades", "Trades", "int"),
    ("win_rate_pct", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "ratio"),
    ("expectancy", "Expectancy / trade", "money"),
    ("exposure_pct", "Exposure", "pct"),
    ("fees", "Fees paid", "money"),
    ("initial_equity", "Initial equity", "money"),
)


def downsample_minmax(values: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` points keeping each bucket's min and max, in order."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 2) // 2)
    size = -(-n // buckets)
    padded = np.concatenate([values, np.full(buckets * size - n, values[-1])]).reshape(buckets, size)
    offsets = np.arange(buckets) * size
    picks = np.concatenate(([0, n - 1], offsets + padded.argmin(axis=1), offsets + padded.argmax(axis=1)))
    return np.unique(np.minimum(picks, n - 1))


def _format_metric(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if kind == "pct":
        return f"{value:,.2f} %"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "days":
        return f"{value:,.1f} d"
    if kind == "money":
        return f"{value:,.2f}"
    return f"{value:,.3f}"


def _metric_rows(metrics: Metrics | Mapping[str, Any]) -> list[list[str]]:
    values = metrics.to_dict() if isinstance(metrics, Metrics) else dict(metrics)
    rows = [
        [label, _format_metric(values[key], kind), key] for key, label, kind in METRIC_LABELS if key in values
    ]
    known = {key for key, _, _ in METRIC_LABELS}
    for key, value in values.items():  # anything else the engine adds, e.g. elapsed_s
        if key not in known and isinstance(value, int | float) and not key.endswith("_ns"):
            kind = "int" if isinstance(value, int) and not isinstance(value, bool) else "num"
            rows.append([key, _format_metric(value, kind), key])
    return rows


def _series(times_ms: np.ndarray, values: np.ndarray, max_points: int) -> dict[str, list[float]]:
    keep = downsample_minmax(values, max_points)
    return {"t": times_ms[keep].tolist(), "v": np.round(values[keep], 10).tolist()}


def _trades_payload(trades: Sequence[TradeLike]) -> tuple[list[list[Any]], int]:
    total = len(trades)
    chosen: Sequence[TradeLike] = trades
    if total > MAX_TRADE_MARKERS:
        step = total / MAX_TRADE_MARKERS
        chosen = [trades[int(i * step)] for i in range(MAX_TRADE_MARKERS)]
    rows = [
        [
            int(t.entry_time_ns) // 1_000_000,
            float(t.entry_price),
            int(t.exit_time_ns) // 1_000_000,
            float(t.exit_price),
            1 if str(t.side).lower() in ("long", "buy") else -1,
            float(t.quantity),
            float(t.pnl),
            float(t.fees),
        ]
        for t in chosen
    ]
    return rows, total


def build_report(
    ohlcv: OHLCV,
    equity: np.ndarray,
    trades: Sequence[TradeLike],
    metrics: Metrics | Mapping[str, Any],
    title: str,
    max_points: int = MAX_POINTS,
    heatmap: Mapping[str, Any] | None = None,
) -> str:
    """The report's HTML text (see :func:`write_report`)."""
    equity = np.asarray(equity, dtype=np.float64)
    if len(equity) != len(ohlcv):
        raise ValueError(f"equity has {len(equity)} values for {len(ohlcv)} bars")
    if len(ohlcv) == 0:
        raise ValueError("no bars to report")
    times_ms = ohlcv.time_ns // 1_000_000
    trade_rows, trade_count = _trades_payload(trades)
    payload = {
        "title": title,
        "subtitle": (
            f"{ohlcv.symbol or 'unknown symbol'} · {ohlcv.timeframe or '?'} · {len(ohlcv):,} bars · "
            f"{format_ns(ohlcv.start_ns)} → {format_ns(ohlcv.end_ns)} UTC"
        ),
        "price": _series(times_ms, ohlcv.close, max_points),
        "equity": _series(times_ms, equity, max_points),
        "drawdown": _series(times_ms, drawdown(equity) * 100, max_points),
        "trades": trade_rows,
        "tradeCount": trade_count,
        "metrics": _metric_rows(metrics),
        "heatmap": _heatmap_payload(heatmap),
    }
    # "</" inside the JSON would close the <script> element early.
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return (
        _TEMPLATE.replace("%TITLE%", html.escape(title))
        .replace("%CSS%", _CSS)
        .replace("%JS%", _JS)
        .replace("%DATA%", data)
    )


def _heatmap_payload(heatmap: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The heatmap as JSON-safe data (non-finite scores as empty cells), or None."""
    if heatmap is None:
        return None
    z = [
        [v if isinstance(v, int | float) and math.isfinite(v) else None for v in row] for row in heatmap["z"]
    ]
    if len(z) != len(heatmap["ys"]) or any(len(row) != len(heatmap["xs"]) for row in z):
        raise ValueError("heatmap: z must have one row per y value and one cell per x value")
    return {**heatmap, "xs": [str(v) for v in heatmap["xs"]], "ys": [str(v) for v in heatmap["ys"]], "z": z}


def write_report(
    path: str | os.PathLike[str],
    ohlcv: OHLCV,
    equity: np.ndarray,
    trades: Sequence[TradeLike],
    metrics: Metrics | Mapping[str, Any],
    title: str,
    heatmap: Mapping[str, Any] | None = None,
) -> Path:
    """Write the self-contained HTML report of one backtest; returns its path.

    ``equity`` has one value per bar of ``ohlcv``; ``trades`` are closed round trips
    (:class:`~sniperbot.backtest.metrics.Trade` or alike); ``metrics`` is a
    :class:`~sniperbot.backtest.metrics.Metrics` or a dict of the same names (extra
    numeric entries are listed too). ``heatmap`` (an optimisation's, see the module doc) adds
    the parameter-stability map.
    """
    target = Path(path)
    text = build_report(ohlcv, equity, trades, metrics, title, heatmap=heatmap)
    target.write_text(text, encoding="utf-8")
    return target


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%TITLE%</title>
<style>%CSS%</style>
</head>
<body>
<header><h1 id="title"></h1><div id="subtitle"></div></header>
<section id="metrics" class="metrics"></section>
<section id="heatmap-panel" class="panel" hidden><h2 id="heatmap-title"></h2>
<div id="heatmap" class="chart-box"></div></section>
<section class="panel"><h2>Price and trades</h2><div class="legend">
<span class="k long">&#9650; long entry</span><span class="k short">&#9660; short entry</span>
<span class="k win">&#9679; exit, win</span><span class="k loss">&#9679; exit, loss</span>
<span class="hint">drag to zoom · double-click to reset</span></div>
<div id="price-chart" class="chart-box"></div></section>
<section class="panel"><h2>Equity</h2><div id="equity-chart" class="chart-box"></div></section>
<section class="panel"><h2>Drawdown</h2><div id="drawdown-chart" class="chart-box"></div></section>
<section class="panel"><h2 id="trades-title">Trades</h2><div class="table-box"><table id="trades">
<thead><tr><th>#</th><th>side</th><th>entry (UTC)</th><th>entry price</th><th>exit (UTC)</th>
<th>exit price</th><th>quantity</th><th>pnl</th><th>fees</th></tr></thead><tbody></tbody></table></div>
</section>
<div id="tooltip" class="tooltip"></div>
<footer>sniperbot backtest report · self-contained, works offline</footer>
<script>window.addEventListener("error", function (e) {
document.body.setAttribute("data-error", String(e.message)); });</script>
<script id="report-data" type="application/json">%DATA%</script>
<script>%JS%</script>
</body>
</html>
"""

_CSS = """
:root{color-scheme:dark;--bg:#0f1419;--panel:#161d26;--grid:#263140;--text:#d8dee9;--dim:#8a96a8;--price:#7aa2f7;
--equity:#9ece6a;--dd:#f7768e;--long:#2ecc71;--short:#ff5c7a;--win:#2ecc71;--loss:#ff5c7a}
*{box-sizing:border-box}
body{margin:0;padding:18px 22px;background:var(--bg);color:var(--text);
font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header h1{margin:0 0 2px;font-size:20px;font-weight:600}
#subtitle{color:var(--dim);margin-bottom:14px}
.metrics{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px;margin-bottom:14px}
.metric{background:var(--panel);border-radius:6px;padding:8px 10px}
.metric .name{color:var(--dim);font-size:11px;text-transform:uppercase;letter-spacing:.04em}
.metric .value{font-size:17px;font-weight:600;font-variant-numeric:tabular-nums}
.metric .value.neg{color:var(--dd)} .metric .value.pos{color:var(--equity)}
.panel{background:var(--panel);border-radius:6px;padding:10px 12px;margin-bottom:12px}
.panel h2{margin:0 0 6px;font-size:13px;font-weight:600;color:var(--dim)}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;color:var(--dim);margin-bottom:4px}
.k.long{color:var(--long)} .k.short{color:var(--short)} .k.win{color:var(--win)} .k.loss{color:var(--loss)}
.hint{margin-left:auto}
.chart-box{position:relative;width:100%}
svg.chart{display:block;width:100%;user-select:none;cursor:crosshair}
svg.chart .grid line{stroke:var(--grid);stroke-width:1}
svg.chart text{fill:var(--dim);font-size:11px}
svg.chart .line{fill:none;stroke-width:1.2;vector-effect:non-scaling-stroke}
svg.chart .area{stroke:none}
svg.chart .cross{stroke:var(--dim);stroke-dasharray:3 3;pointer-events:none}
svg.chart .zoom{fill:#7aa2f733;stroke:#7aa2f7}
.table-box{max-height:360px;overflow:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;text-align:right;white-space:nowrap;border-bottom:1px solid var(--grid)}
th{position:sticky;top:0;background:var(--panel);color:var(--dim);font-weight:600}
td.pos{color:var(--win)} td.neg{color:var(--loss)}
.tooltip{position:fixed;pointer-events:none;background:#000d;border:1px solid var(--grid);border-radius:4px;
padding:5px 8px;font-size:12px;display:none;white-space:pre;z-index:9}
footer{color:var(--dim);font-size:11px;margin-top:8px}
svg.heatmap{display:block;max-width:100%}
svg.heatmap text{fill:var(--text);font-size:11px}
svg.heatmap text.axis{fill:var(--dim)}
svg.heatmap rect.empty{fill:var(--grid)}
"""

_JS = r"""
(function () {
"use strict";
var D = JSON.parse(document.getElementById("report-data").textContent);
var NS = "http://www.w3.org/2000/svg";
var full = [Math.min(D.price.t[0], D.equity.t[0]), Math.max(D.price.t[D.price.t.length - 1],
  D.equity.t[D.equity.t.length - 1])];
if (full[1] <= full[0]) { full[1] = full[0] + 1; }
var view = full.slice();
// "#view=<start ms>,<end ms>" opens the report zoomed (shareable links, screenshots).
var wanted = /view=(-?\d+),(-?\d+)/.exec(location.hash);
if (wanted && +wanted[2] > +wanted[1]) { view = [+wanted[1], +wanted[2]]; }
var charts = [];
var tip = document.getElementById("tooltip");

function el(name, attrs, parent) {
  var e = document.createElementNS(NS, name);
  for (var k in attrs) { e.setAttribute(k, attrs[k]); }
  if (parent) { parent.appendChild(e); }
  return e;
}
function pad2(n) { return (n < 10 ? "0" : "") + n; }
function fmtTime(ms, withTime) {
  var d = new Date(ms);
  var s = d.getUTCFullYear() + "-" + pad2(d.getUTCMonth() + 1) + "-" + pad2(d.getUTCDate());
  return withTime ? s + " " + pad2(d.getUTCHours()) + ":" + pad2(d.getUTCMinutes()) : s;
}
function fmtNum(v) {
  var a = Math.abs(v);
  var digits = a >= 1000 ? 2 : a >= 1 ? 4 : 6;
  return v.toLocaleString("en-US", {maximumFractionDigits: digits});
}
function niceStep(span, count) {
  var raw = span / Math.max(1, count), p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}
function lowerBound(arr, x) {
  var lo = 0, hi = arr.length;
  while (lo < hi) { var mid = (lo + hi) >> 1; if (arr[mid] < x) { lo = mid + 1; } else { hi = mid; } }
  return lo;
}
function visibleRange(ts) {
  return [Math.max(0, lowerBound(ts, view[0]) - 1), Math.min(ts.length, lowerBound(ts, view[1]) + 1)];
}

function makeChart(boxId, series, opts) {
  var box = document.getElementById(boxId);
  var chart = {box: box, series: series, opts: opts, svg: null};
  charts.push(chart);
  return chart;
}

function draw(chart) {
  var box = chart.box, s = chart.series, o = chart.opts;
  var W = Math.max(320, box.clientWidth || 900), H = o.height, L = 70, R = 12, T = 8, B = 22;
  if (chart.svg) { box.removeChild(chart.svg); }
  var svg = el("svg", {"class": "chart", viewBox: "0 0 " + W + " " + H, width: W, height: H,
    "data-series": o.name});
  chart.svg = svg;
  box.appendChild(svg);
  var r = visibleRange(s.t), lo = Infinity, hi = -Infinity, i;
  for (i = r[0]; i < r[1]; i++) { if (s.v[i] < lo) { lo = s.v[i]; } if (s.v[i] > hi) { hi = s.v[i]; } }
  if (o.markers) {
    o.markers.forEach(function (m) {
      if (m[0] >= view[0] && m[0] <= view[1]) { lo = Math.min(lo, m[1]); hi = Math.max(hi, m[1]); }
    });
  }
  if (o.zeroTop) { hi = Math.max(hi, 0); }
  if (!isFinite(lo)) { lo = 0; hi = 1; }
  if (hi <= lo) { hi = lo + (Math.abs(lo) || 1) * 0.01; lo = lo - (Math.abs(lo) || 1) * 0.01; }
  var padY = (hi - lo) * 0.04; lo -= padY; hi += o.zeroTop ? 0 : padY;
  var x = function (t) { return L + (t - view[0]) / (view[1] - view[0]) * (W - L - R); };
  var y = function (v) { return T + (hi - v) / (hi - lo) * (H - T - B); };
  chart.x = x; chart.W = W; chart.L = L; chart.R = R; chart.H = H;
  var grid = el("g", {"class": "grid"}, svg);
  var step = niceStep(hi - lo, 5), v0 = Math.ceil(lo / step) * step;
  for (var v = v0; v <= hi; v += step) {
    if (Math.abs(v) < step * 1e-9) { v = 0; }
    el("line", {x1: L, x2: W - R, y1: y(v), y2: y(v)}, grid);
    var tx = el("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end"}, grid);
    tx.textContent = fmtNum(v) + (o.unit || "");
  }
  var span = view[1] - view[0], withTime = span < 4 * 86400000;
  for (var k = 0; k <= 5; k++) {
    var t = view[0] + span * k / 5, xt = x(t);
    el("line", {x1: xt, x2: xt, y1: T, y2: H - B}, grid);
    var anchor = k === 0 ? "start" : k === 5 ? "end" : "middle";
    var lab = el("text", {x: xt, y: H - 6, "text-anchor": anchor}, grid);
    lab.textContent = fmtTime(t, withTime);
  }
  // Points just outside the view keep the line continuous to the edges; the clip hides them.
  var clipId = "clip-" + o.name;
  var clip = el("clipPath", {id: clipId}, el("defs", {}, svg));
  el("rect", {x: L, y: 0, width: W - L - R, height: H - B}, clip);
  var plot = el("g", {"clip-path": "url(#" + clipId + ")"}, svg);
  var d = [], n = 0;
  for (i = r[0]; i < r[1]; i++) {
    d.push((n++ ? "L" : "M") + x(s.t[i]).toFixed(1) + " " + y(s.v[i]).toFixed(1));
  }
  var line = d.join("");
  if (o.fill && n > 1) {
    var base = y(o.zeroTop ? 0 : lo);
    el("path", {"class": "area", d: line + "L" + x(s.t[r[1] - 1]).toFixed(1) + " " + base + "L" +
      x(s.t[r[0]]).toFixed(1) + " " + base + "Z", fill: o.fill}, plot);
  }
  el("path", {"class": "line", d: line, stroke: o.color, "data-points": n}, plot);
  if (o.markers) { drawMarkers(plot, o.markers, x, y, W - L - R); }
  chart.cross = el("line", {"class": "cross", x1: -10, x2: -10, y1: T, y2: H - B}, svg);
  chart.zoomRect = el("rect", {"class": "zoom", x: 0, y: T, width: 0, height: H - T - B,
    visibility: "hidden"}, svg);
  chart.y = y;
  attachEvents(chart);
}

function drawMarkers(svg, markers, x, y, width) {
  var paths = {long: [], short: [], win: [], loss: []}, shown = 0, visible = 0;
  markers.forEach(function (m) { if (m[0] >= view[0] && m[0] <= view[1]) { visible++; } });
  // Crowded (thousands of trades across the chart): smaller marks so the price shows through.
  var s = visible > width / 3 ? 2 : 4, r = s * 0.75;
  var triangleUp = "l" + s + " " + 2 * s + "h" + -2 * s + "Z";
  var triangleDown = "l" + s + " " + -2 * s + "h" + -2 * s + "Z";
  var circle = "a" + r + " " + r + " 0 1 0 " + 2 * r + " 0a" + r + " " + r + " 0 1 0 " + -2 * r + " 0";
  markers.forEach(function (m) {
    if (m[0] < view[0] || m[0] > view[1]) { return; }
    var px = x(m[0]), py = y(m[1]);
    shown++;
    if (m[2] === "long") {  // triangle pointing up, tip at the fill price
      paths.long.push("M" + px.toFixed(1) + " " + (py - s).toFixed(1) + triangleUp);
    } else if (m[2] === "short") {
      paths.short.push("M" + px.toFixed(1) + " " + (py + s).toFixed(1) + triangleDown);
    } else {
      paths[m[2]].push("M" + (px - r).toFixed(1) + " " + py.toFixed(1) + circle);
    }
  });
  var g = el("g", {"class": "markers", "data-count": shown}, svg);
  var colours = {long: "var(--long)", short: "var(--short)", win: "var(--win)", loss: "var(--loss)"};
  for (var kind in paths) {
    if (paths[kind].length) {
      var opacity = kind === "win" || kind === "loss" ? 0.8 : 1;
      el("path", {d: paths[kind].join(""), fill: colours[kind], "fill-opacity": opacity,
        "class": "marker-" + kind, "data-count": paths[kind].length}, g);
    }
  }
}

function valueAt(s, t) {
  var i = Math.min(s.t.length - 1, Math.max(0, lowerBound(s.t, t)));
  if (i > 0 && Math.abs(s.t[i - 1] - t) < Math.abs(s.t[i] - t)) { i--; }
  return [s.t[i], s.v[i]];
}

function attachEvents(chart) {
  var svg = chart.svg, dragFrom = null;
  function tAt(evt) {
    var box = svg.getBoundingClientRect(), px = (evt.clientX - box.left) * chart.W / box.width;
    return view[0] + (px - chart.L) / (chart.W - chart.L - chart.R) * (view[1] - view[0]);
  }
  svg.addEventListener("mousemove", function (evt) {
    var t = tAt(evt);
    charts.forEach(function (c) {
      if (c.cross) { var xx = c.x(t); c.cross.setAttribute("x1", xx); c.cross.setAttribute("x2", xx); }
    });
    var lines = [fmtTime(t, true) + " UTC"];
    charts.forEach(function (c) {
      var p = valueAt(c.series, t);
      lines.push(c.opts.label + ": " + fmtNum(p[1]) + (c.opts.unit || ""));
    });
    var near = nearestTrade(t, chart);
    if (near) { lines.push(near); }
    tip.textContent = lines.join("\n");
    tip.style.display = "block";
    tip.style.left = Math.min(window.innerWidth - 260, evt.clientX + 14) + "px";
    tip.style.top = (evt.clientY + 14) + "px";
    if (dragFrom !== null) {
      var a = chart.x(Math.min(dragFrom, t)), b = chart.x(Math.max(dragFrom, t));
      chart.zoomRect.setAttribute("x", a); chart.zoomRect.setAttribute("width", Math.max(0, b - a));
      chart.zoomRect.setAttribute("visibility", "visible");
    }
  });
  svg.addEventListener("mouseleave", function () {
    tip.style.display = "none"; dragFrom = null; chart.zoomRect.setAttribute("visibility", "hidden");
  });
  svg.addEventListener("mousedown", function (evt) { dragFrom = tAt(evt); evt.preventDefault(); });
  svg.addEventListener("mouseup", function (evt) {
    if (dragFrom === null) { return; }
    var a = Math.min(dragFrom, tAt(evt)), b = Math.max(dragFrom, tAt(evt));
    dragFrom = null;
    if ((b - a) / (view[1] - view[0]) > 0.005) { view = [a, b]; render(); }
    else { chart.zoomRect.setAttribute("visibility", "hidden"); }
  });
  svg.addEventListener("dblclick", function () { view = full.slice(); render(); });
}

function nearestTrade(t, chart) {
  if (!D.trades.length || chart.opts.name !== "price") { return null; }
  var pxPerMs = (chart.W - chart.L - chart.R) / (view[1] - view[0]), best = null, bestD = 8;
  D.trades.forEach(function (tr, idx) {
    [tr[0], tr[2]].forEach(function (tt) {
      var dd = Math.abs(tt - t) * pxPerMs;
      if (dd < bestD) { bestD = dd; best = idx; }
    });
  });
  if (best === null) { return null; }
  var tr = D.trades[best];
  return "trade #" + (best + 1) + " " + (tr[4] > 0 ? "long" : "short") + " " + fmtNum(tr[5]) + " @ " +
    fmtNum(tr[1]) + " -> " + fmtNum(tr[3]) + "  pnl " + fmtNum(tr[6]);
}

function render() { charts.forEach(draw); }

document.getElementById("title").textContent = D.title;
document.getElementById("subtitle").textContent = D.subtitle;
var metricsBox = document.getElementById("metrics");
D.metrics.forEach(function (m) {
  var card = document.createElement("div"); card.className = "metric"; card.setAttribute("data-key", m[2]);
  var name = document.createElement("div"); name.className = "name"; name.textContent = m[0];
  var value = document.createElement("div"); value.className = "value"; value.textContent = m[1];
  if (/^-/.test(m[1]) && m[2] !== "max_drawdown_pct") { value.className += " neg"; }
  card.appendChild(name); card.appendChild(value); metricsBox.appendChild(card);
});

// Heatmap: one cell per (x, y) pair, red (worst) -> amber -> green (best), empty cells grey.
function drawHeatmap(H) {
  var box = document.getElementById("heatmap"), nx = H.xs.length, ny = H.ys.length;
  var cw = Math.max(34, Math.min(64, Math.floor(1100 / nx)));
  var ch = Math.max(18, Math.min(30, Math.floor(480 / ny)));
  var L = 64, T = 8, B = 40, W = L + cw * nx + 8, Ht = T + ch * ny + B;
  var svg = el("svg", {"class": "heatmap", viewBox: "0 0 " + W + " " + Ht, width: W, height: Ht,
    "data-x": H.x, "data-y": H.y}, box);
  // Coloured by rank, not value: one disastrous corner must not flatten the rest into one colour.
  var sorted = [], best = null;
  H.z.forEach(function (r) { r.forEach(function (v) { if (v !== null) { sorted.push(v); } }); });
  sorted.sort(function (a, b) { return a - b; });
  if (sorted.length) { best = H.higher_is_better ? sorted[sorted.length - 1] : sorted[0]; }
  function colour(v) {
    var f = sorted.length > 1 ? lowerBound(sorted, v) / (sorted.length - 1) : 1;
    if (!H.higher_is_better) { f = 1 - f; }
    var a = [247, 118, 142], m = [224, 175, 104], b = [158, 206, 106], c = [0, 0, 0], k;
    for (k = 0; k < 3; k++) {
      c[k] = Math.round(f < 0.5 ? a[k] + (m[k] - a[k]) * f * 2 : m[k] + (b[k] - m[k]) * (f - 0.5) * 2);
    }
    return "rgb(" + c.join(",") + ")";
  }
  var showText = nx * ny <= 900, digits = cw >= 48 ? 2 : 1;
  for (var i = 0; i < ny; i++) {
    var yy = T + (ny - 1 - i) * ch;  // the first y value at the bottom, as on a chart
    var yl = el("text", {"class": "axis", x: L - 6, y: yy + ch / 2 + 4, "text-anchor": "end"}, svg);
    yl.textContent = H.ys[i];
    for (var j = 0; j < nx; j++) {
      var v = H.z[i][j], xx = L + j * cw;
      var cell = el("rect", {"class": v === null ? "cell empty" : "cell", x: xx + 0.5, y: yy + 0.5,
        width: cw - 1, height: ch - 1, "data-x": H.xs[j], "data-y": H.ys[i],
        "data-value": v === null ? "" : String(v)}, svg);
      if (v !== null) { cell.setAttribute("fill", colour(v)); }
      if (v !== null && v === best) {
        cell.setAttribute("stroke", "#ffffff"); cell.setAttribute("stroke-width", 2);
      }
      var tt = el("title", {}, cell);
      tt.textContent = H.x + "=" + H.xs[j] + ", " + H.y + "=" + H.ys[i] + ": " +
        (v === null ? "—" : fmtNum(v));
      if (showText && v !== null) {
        var label = el("text", {x: xx + cw / 2, y: yy + ch / 2 + 4, "text-anchor": "middle",
          fill: "#0f1419"}, svg);
        label.textContent = v.toFixed(Math.abs(v) >= 100 ? 0 : digits);
      }
    }
  }
  for (j = 0; j < nx; j++) {
    var xl = el("text", {"class": "axis", x: L + j * cw + cw / 2, y: T + ny * ch + 14,
      "text-anchor": "middle"}, svg);
    xl.textContent = H.xs[j];
  }
  var xn = el("text", {"class": "axis", x: L + nx * cw / 2, y: T + ny * ch + 32,
    "text-anchor": "middle"}, svg);
  xn.textContent = H.x;
  var yn = el("text", {"class": "axis", x: 4, y: T + 10}, svg);
  yn.textContent = H.y;
  document.getElementById("heatmap-title").textContent = H.metric + " over " + H.x + " \u00d7 " + H.y +
    (H.others.length ? " (best over " + H.others.join(", ") + ")" : "") + " \u00b7 parameter stability";
  document.getElementById("heatmap-panel").hidden = false;
}
if (D.heatmap) { drawHeatmap(D.heatmap); }

var markers = [];
D.trades.forEach(function (tr) {
  markers.push([tr[0], tr[1], tr[4] > 0 ? "long" : "short"]);
  markers.push([tr[2], tr[3], tr[6] > 0 ? "win" : "loss"]);
});
makeChart("price-chart", D.price, {name: "price", label: "close", color: "var(--price)", height: 340,
  markers: markers});
makeChart("equity-chart", D.equity, {name: "equity", label: "equity", color: "var(--equity)", height: 220,
  fill: "rgba(158,206,106,0.12)"});
makeChart("drawdown-chart", D.drawdown, {name: "drawdown", label: "drawdown", color: "var(--dd)", height: 160,
  fill: "rgba(247,118,142,0.25)", unit: "%", zeroTop: true});
render();

var tbody = document.querySelector("#trades tbody"), rows = [];
D.trades.forEach(function (tr, i) {
  var cls = tr[6] > 0 ? "pos" : tr[6] < 0 ? "neg" : "";
  var cells = [i + 1, tr[4] > 0 ? "long" : "short", fmtTime(tr[0], true), fmtNum(tr[1]), fmtTime(tr[2], true),
    fmtNum(tr[3]), fmtNum(tr[5])];
  rows.push("<tr><td>" + cells.join("</td><td>") + "</td><td class=\"" + cls + "\">" + fmtNum(tr[6]) +
    "</td><td>" + fmtNum(tr[7]) + "</td></tr>");
});
tbody.innerHTML = rows.join("");
document.getElementById("trades-title").textContent = "Trades (" + D.tradeCount.toLocaleString("en-US") +
  (D.tradeCount > D.trades.length ? ", " + D.trades.length.toLocaleString("en-US") + " shown" : "") + ")";
var resizeTimer = null;
window.addEventListener("resize", function () {
  clearTimeout(resizeTimer); resizeTimer = setTimeout(render, 100);
});
document.body.setAttribute("data-rendered", "ok");
})();
"""
