// sniperbot dashboard: one WebSocket (/api/v1/ws) for live data, fetch() with the bearer token for controls.
// No dependencies, no build step. The token comes from ?token= (then removed from the address bar)
// or the form, and is kept in sessionStorage (this tab only).
"use strict";

const API = "/api/v1";
const state = { tree: null, status: null, venues: [], orders: [], fills: [], equity: [], prices: {} };
const $ = (id) => document.getElementById(id);

function token() { return sessionStorage.getItem("sniperbot.token") || ""; }

function takeTokenFromUrl() {
  const url = new URL(location.href);
  const t = url.searchParams.get("token");
  if (t) {
    sessionStorage.setItem("sniperbot.token", t);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

const num = (v, d = 4) => (typeof v === "number" ? v.toFixed(d) : "—");
const signed = (v) => el("span", { class: v >= 0 ? "pos" : "neg" }, num(v, 2));

// -- rendering ------------------------------------------------------------------------------
function renderTree() {
  const body = $("tree");
  body.replaceChildren();
  const walk = (node, depth) => {
    for (const child of node.children || []) {
      const worker = child.kind === "worker";
      body.append(el("tr", { class: worker ? "worker" : "sup", "data-actor": child.id },
        el("td", { class: "depth" + Math.min(depth, 3) }, child.id),
        el("td", {}, el("span", { class: "state badge " + child.state }, child.state)),
        el("td", { class: "pid" }, child.pid ?? ""),
        el("td", { class: "incarnation" }, child.incarnation ?? ""),
        el("td", { class: "restarts" }, child.restarts ?? 0)));
      walk(child, depth + 1);
    }
  };
  if (state.tree) walk(state.tree, 0);
}

function renderStatus() {
  const s = state.status;
  if (!s) return;
  const ts = $("trading-state");
  ts.textContent = s.trading_state;
  ts.className = "badge " + s.trading_state;
  $("pnl-net").replaceChildren("P&L ", signed(s.pnl.net));
  const dl = (id, rows) => $(id).replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  dl("status-list", [["trading state", s.trading_state], ["actors running", s.actors], ["restarts", s.restarts],
    ["orders", s.orders], ["fills", s.fills], ["rejected", s.rejected], ["uptime", Math.round(s.uptime_s) + " s"]]);
  dl("pnl-list", [["net", signed(s.pnl.net)], ["realized", signed(s.pnl.realized)],
    ["unrealized", signed(s.pnl.unrealized)], ["fees", num(s.pnl.fees, 2)]]);
  const breakers = Object.entries(s.breakers || {});
  $("breakers").replaceChildren(...(breakers.length
    ? breakers.map(([scope, st]) => el("li", { "data-breaker": scope }, el("span", { class: "badge " + st }, scope + ": " + st)))
    : [el("li", {}, "all closed")]));
  $("positions").replaceChildren(...Object.entries(s.positions || {}).map(([k, q]) =>
    el("tr", {}, el("td", {}, k), el("td", {}, num(q, 6)))));
}

function renderVenues() {
  $("venues").replaceChildren(...state.venues.map((v) => {
    const feed = v.feed ? (v.feed.stale ? "stale" : v.feed.connected ? "connected" : "disconnected") : "—";
    return el("li", { "data-venue": v.name }, el("span", { class: "badge " + v.state }, v.name + ": " + v.state),
      " breaker ", el("span", { class: "badge " + v.breaker }, v.breaker), " feed " + feed);
  }));
}

function renderOrders() {
  $("orders").replaceChildren(...state.orders.slice(-50).reverse().map((o) => el("tr", {},
    el("td", {}, o.client_order_id), el("td", {}, o.symbol), el("td", { class: o.side }, o.side),
    el("td", {}, num(o.quantity, 6)), el("td", {}, o.status), el("td", {}, num(o.filled, 6)))));
}

function renderFills() {
  $("fills").replaceChildren(...state.fills.slice(-50).reverse().map((f) => el("tr", {},
    el("td", {}, new Date(f.ts_ns / 1e6).toLocaleTimeString()), el("td", {}, f.symbol),
    el("td", { class: f.side }, f.side), el("td", {}, num(f.quantity, 6)), el("td", {}, num(f.price, 2)),
    el("td", {}, num(f.fee, 4)))));
}

// -- charts: a small canvas line chart with optional trade markers ------------------------------
function lineChart(canvas, points, markers, color) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight || canvas.height;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, w, h);
  g.fillStyle = "#8a96a3"; g.font = "11px system-ui";
  if (points.length < 2) { g.fillText("waiting for data…", 8, 16); return; }
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  let lo = Infinity, hi = -Infinity;
  for (const [, v] of points) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (hi === lo) { hi += 1; lo -= 1; }
  const pad = 18;
  const x = (t) => pad + ((t - t0) / (t1 - t0 || 1)) * (w - 2 * pad);
  const y = (v) => h - pad - ((v - lo) / (hi - lo)) * (h - 2 * pad);
  g.fillText(hi.toFixed(2), 2, 11); g.fillText(lo.toFixed(2), 2, h - 4);
  g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath();
  points.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
  g.stroke();
  for (const m of markers || []) {
    if (m.t < t0 || m.t > t1) continue;
    const px = x(m.t), py = y(Math.min(hi, Math.max(lo, m.v)));
    g.fillStyle = m.side === "buy" ? "#2ea043" : "#e5534b";
    g.beginPath();
    if (m.side === "buy") { g.moveTo(px, py + 2); g.lineTo(px - 5, py + 10); g.lineTo(px + 5, py + 10); }
    else { g.moveTo(px, py - 2); g.lineTo(px - 5, py - 10); g.lineTo(px + 5, py - 10); }
    g.fill();
  }
}

function renderCharts() {
  lineChart($("equity-chart"), state.equity.map((p) => [p.t, p.net]), [], "#58a6ff");
  const select = $("price-symbol");
  const keys = Object.keys(state.prices).sort();
  if (select.options.length !== keys.length) {
    const chosen = select.value;
    select.replaceChildren(...keys.map((k) => el("option", { value: k }, k)));
    if (keys.includes(chosen)) select.value = chosen;
  }
  const key = select.value;
  const [venue, symbol] = key.split(/:(.*)/s);
  const markers = state.fills.filter((f) => f.venue === venue && f.symbol === symbol)
    .map((f) => ({ t: f.ts_ns / 1e9, v: f.price, side: f.side }));
  lineChart($("price-chart"), state.prices[key] || [], markers, "#d2a8ff");
}

// Changed order rows replace theirs (by client order id); new ones are appended; the latest 100 stay.
function mergeOrders(rows) {
  const index = new Map(state.orders.map((o, i) => [o.client_order_id, i]));
  for (const row of rows) {
    if (index.has(row.client_order_id)) state.orders[index.get(row.client_order_id)] = row;
    else { index.set(row.client_order_id, state.orders.length); state.orders.push(row); }
  }
  state.orders = state.orders.slice(-100);
}

// New samples from the server: those at or before a client's last time replace it (it was updated).
function appendPoints(series, points, time) {
  if (!points.length) return series;
  const first = time(points[0]);
  while (series.length && time(series[series.length - 1]) >= first) series.pop();
  return series.concat(points).slice(-3600);
}

// -- the stream -----------------------------------------------------------------------------
let socket = null;
function connect() {
  if (socket) { const old = socket; socket = null; old.close(); }
  if (!token()) { $("token-form").hidden = false; return; }
  $("token-form").hidden = true;
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + API + "/ws");
  socket = ws;
  ws.onopen = () => ws.send(JSON.stringify({ token: token() }));  // not in the URL: URLs end up in logs
  ws.onmessage = (event) => {
    const { type, data } = JSON.parse(event.data);
    const conn = $("conn"); conn.textContent = "live"; conn.className = "badge on";
    if (type === "snapshot") {
      Object.assign(state, { tree: data.tree, status: data.status, venues: data.venues, orders: data.orders,
        fills: data.fills_recent, equity: data.equity, prices: data.prices });
      renderTree(); renderStatus(); renderVenues(); renderOrders(); renderFills(); renderCharts();
    } else if (type === "tree") { state.tree = data; renderTree(); }
    else if (type === "status") { state.status = data; renderStatus(); }
    else if (type === "venues") { state.venues = data; renderVenues(); }
    else if (type === "orders") { mergeOrders(data); renderOrders(); }
    else if (type === "fills") { state.fills = state.fills.concat(data).slice(-500); renderFills(); renderCharts(); }
    else if (type === "equity") { state.equity = appendPoints(state.equity, data, (p) => p.t); renderCharts(); }
    else if (type === "prices") {
      for (const [key, points] of Object.entries(data)) {
        state.prices[key] = appendPoints(state.prices[key] || [], points, (p) => p[0]);
      }
      renderCharts();
    }
    else if (type === "error") { say("node: " + data.message); }
  };
  ws.onclose = (event) => {
    if (ws !== socket) return;  // replaced by a newer connection (a token entered meanwhile)
    const conn = $("conn"); conn.textContent = "offline"; conn.className = "badge off";
    if (event.code === 1008) {  // policy violation: a wrong token
      sessionStorage.removeItem("sniperbot.token");
      say("the token was refused");
      $("token-form").hidden = false;
      return;
    }
    setTimeout(connect, 2000);
  };
}

function say(text) { $("message").textContent = text; }

// -- controls ---------------------------------------------------------------------------------
const CONFIRM = {
  halt: "HALT trading? No order will pass until you resume.",
  reduce: "Switch to REDUCING? Only risk-reducing orders will pass.",
  resume: "RESUME normal trading?",
};

async function control(cmd) {
  if (!window.confirm(CONFIRM[cmd])) return;
  try {
    const response = await fetch(API + "/" + cmd, {
      method: "POST",
      headers: { Authorization: "Bearer " + token(), "Content-Type": "application/json" },
      body: JSON.stringify({ reason: "dashboard" }),
    });
    const body = await response.json();
    say(response.ok ? cmd + ": trading state " + body.trading_state : cmd + " failed: " + body.error.message);
  } catch (e) {
    say(cmd + " failed: " + e);
  }
}

document.querySelectorAll("button[data-cmd]").forEach((b) => b.addEventListener("click", () => control(b.dataset.cmd)));
$("price-symbol").addEventListener("change", renderCharts);
window.addEventListener("resize", renderCharts);
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("sniperbot.token", $("token-input").value.trim());
  connect();
});
takeTokenFromUrl();
connect();
