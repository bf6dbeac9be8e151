#!/usr/bin/env node
// Spread plug-in for sniperbot, in JavaScript (Node.js, no packages): the protocol is language-neutral.
//
// Reads quotes on stdin, and on every tick writes the average quoted spread of each asset since the
// last tick, in basis points of the mid:
//   {"subject":"BTC","kind":"spread_bps","value":1.7,"count":12,"window_s":1,"origin":"md.sim.quote.BTC/USDT."}
// or {"t":"hb"} when it heard no quote. Config:
//   [[analysers]]
//   kind = "plugin"
//   id = "spread"
//   command = ["node", "examples/plugins/spread.js"]
//   inputs = ["md.sim.quote."]
// The protocol is described in README.md beside this file.
"use strict";

const readline = require("readline");

const sums = new Map(); // symbol -> {sum, count, topic}
let lastTick = 0;

function subjectOf(symbol) {
  // BTC/USDT:USDT -> BTC (the node's own rule, sniperbot.messages.signals.subject_of)
  return symbol.split("/")[0].split(":")[0].toUpperCase();
}

function write(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
input.on("line", (line) => {
  let event;
  try {
    event = JSON.parse(line);
  } catch (e) {
    process.stderr.write(`spread: unreadable input line (${line.length} chars)\n`);
    return;
  }
  if (event.t === "tick") {
    const windowS = lastTick ? (event.ts_ns - lastTick) / 1e9 : 0;
    lastTick = event.ts_ns;
    if (sums.size === 0) {
      write({ t: "hb" });
      return;
    }
    for (const [symbol, s] of sums) {
      write({
        subject: subjectOf(symbol),
        kind: "spread_bps",
        value: s.sum / s.count,
        count: s.count,
        window_s: windowS,
        ts_ns: event.ts_ns,
        origin: s.topic,
      });
    }
    sums.clear();
    return;
  }
  const msg = event.msg || {};
  if (msg.t === "quote" && msg.bid > 0 && msg.ask > 0) {
    const mid = (msg.bid + msg.ask) / 2;
    const s = sums.get(msg.symbol) || { sum: 0, count: 0, topic: event.topic };
    s.sum += ((msg.ask - msg.bid) / mid) * 1e4;
    s.count += 1;
    sums.set(msg.symbol, s);
  }
});
input.on("close", () => process.exit(0)); // EOF: the node stops us
