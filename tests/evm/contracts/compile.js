// Compiles the Solidity of the EVM tests and of the safety probe with npm solc (standard JSON), into
// the artifacts committed next to them, so neither the tests nor production need a compiler:
//   tests/evm/contracts/*.sol                 -> tests/evm/contracts/build/<Contract>.json {abi, bytecode}
//   sniperbot/venues/evm/contracts/SafetyProbe.sol -> .../SafetyProbe.json {abi, bytecode, deployedBytecode}
// Deterministic: one pinned compiler version (refused otherwise), fixed settings (optimizer on, 200 runs,
// evmVersion shanghai, no metadata hash in the bytecode), sources keyed by file name, JSON written with a
// fixed key order. Usage (from the repository root, after `npm ci`):
//   node tests/evm/contracts/compile.js            write the artifacts
//   node tests/evm/contracts/compile.js --print    print {path: artifact text} as JSON, write nothing
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const SOLC_VERSION = "0.8.37";
const ROOT = path.resolve(__dirname, "..", "..", "..");
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "shanghai",
  metadata: { bytecodeHash: "none" },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function compile(dir, files) {
  const sources = {};
  for (const f of files) sources[f] = { content: fs.readFileSync(path.join(dir, f), "utf8") };
  const out = JSON.parse(solc.compile(JSON.stringify({ language: "Solidity", sources, settings: SETTINGS })));
  const errors = (out.errors || []).filter((e) => e.severity === "error");
  if (errors.length) {
    throw new Error(errors.map((e) => e.formattedMessage).join("\n"));
  }
  return out.contracts;
}

function text(obj) {
  return JSON.stringify(obj, null, 2) + "\n";
}

function main() {
  const version = solc.version().split("+")[0];
  if (version !== SOLC_VERSION) {
    throw new Error(`solc ${version} installed, ${SOLC_VERSION} required (run npm ci)`);
  }
  const results = {};
  const testsDir = path.join(ROOT, "tests", "evm", "contracts");
  const testFiles = fs.readdirSync(testsDir).filter((f) => f.endsWith(".sol")).sort();
  const tests = compile(testsDir, testFiles);
  for (const file of Object.keys(tests).sort()) {
    for (const name of Object.keys(tests[file]).sort()) {
      const c = tests[file][name];
      if (!c.evm.bytecode.object) continue; // abstract contracts and interfaces
      const rel = path.join("tests", "evm", "contracts", "build", `${name}.json`);
      results[rel] = text({ abi: c.abi, bytecode: "0x" + c.evm.bytecode.object });
    }
  }
  const probeDir = path.join(ROOT, "sniperbot", "venues", "evm", "contracts");
  const probe = compile(probeDir, ["SafetyProbe.sol"])["SafetyProbe.sol"]["SafetyProbe"];
  results[path.join("sniperbot", "venues", "evm", "contracts", "SafetyProbe.json")] = text({
    abi: probe.abi,
    bytecode: "0x" + probe.evm.bytecode.object,
    deployedBytecode: "0x" + probe.evm.deployedBytecode.object,
  });
  if (process.argv.includes("--print")) {
    process.stdout.write(JSON.stringify(results));
    return;
  }
  for (const [rel, content] of Object.entries(results)) {
    fs.mkdirSync(path.dirname(path.join(ROOT, rel)), { recursive: true });
    fs.writeFileSync(path.join(ROOT, rel), content);
  }
  process.stderr.write(`wrote ${Object.keys(results).length} artifacts\n`);
}

main();
