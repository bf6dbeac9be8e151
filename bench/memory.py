"""Memory of the default node: PSS (and RSS) of the node's whole process tree.

Runs ``python -m sniperbot run --run-dir D --duration 30`` on the default
config, waits until every actor is running and a few seconds more, then sums
``/proc/<pid>/smaps_rollup`` over the node process and all its descendants
(forkserver, multiprocessing's resource tracker if any, actor processes).
PSS splits each shared page between the processes that map it, so the sum is
the tree's real footprint; RSS counts shared pages once per process.

Also reported: the CPU each process used while the node idled on the default
simulated market (the settle window), and, for comparison, the floor of the
same number of bare Python interpreters running side by side, plus one
interpreter that only imported sniperbot's node and actor modules.

Target: total PSS < 150 MB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.*; PYTHONPATH wins for sniperbot

from bench._common import NodeProcess, emit, parse_args, ratio, short_tmp, subprocess_env, verdict, wait_for

TARGET_PSS_MB = 150.0
_FIELDS = ("Rss", "Pss", "Private_Clean", "Private_Dirty", "Shared_Clean", "Shared_Dirty", "Swap")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (which may hold spaces and parens)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(_stat(int(entry))[1])
            except (OSError, ValueError, IndexError):
                continue  # exited meanwhile
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return out


def smaps_rollup(pid: int) -> dict[str, int]:
    """Memory figures of one process in kB (Rss, Pss, Private_*, Shared_*, Swap)."""
    out = dict.fromkeys(_FIELDS, 0)
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in out:
            out[key] = int(rest.split()[0])
    out["Uss"] = out["Private_Clean"] + out["Private_Dirty"]
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid``."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def cmdline(pid: int) -> str:
    """The process's command line, shortened."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return raw.strip()[:90]


def label(pid: int, node_pid: int, actors: dict[int, str]) -> str:
    """What a process of the tree is."""
    if pid == node_pid:
        return "node"
    if pid in actors:
        return actors[pid]
    cmd = cmdline(pid)
    if "forkserver" in cmd:
        return "forkserver"
    if "resource_tracker" in cmd:
        return "resource_tracker"
    return cmd


def tree_pss_kb(pids: list[int]) -> int:
    """Sum of PSS over ``pids`` (kB)."""
    return sum(smaps_rollup(pid)["Pss"] for pid in pids)


def reference(work: Path, processes: int) -> dict[str, Any]:
    """PSS/RSS floors: ``processes`` bare interpreters side by side, and one that imported sniperbot."""
    bare = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=work)
        for _ in range(processes)
    ]
    imports = (
        "import sniperbot.node, sniperbot.topology as t, sniperbot.config as c, importlib, sys, time; "
        "[importlib.import_module(m) for m in t.preload_modules(t.build_tree(c.Config()))]; "
        "print('ok', flush=True); time.sleep(60)"
    )
    loaded = subprocess.Popen(
        [sys.executable, "-c", imports], cwd=work, env=subprocess_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert loaded.stdout is not None
        loaded.stdout.readline()
        time.sleep(1.0)  # let the bare ones finish starting
        bare_pids = [p.pid for p in bare]
        one = smaps_rollup(loaded.pid)
        return {
            "bare_interpreters": processes,
            "bare_total_pss_mb": round(tree_pss_kb(bare_pids) / 1024, 1),
            "bare_total_rss_mb": round(sum(smaps_rollup(p)["Rss"] for p in bare_pids) / 1024, 1),
            "imported_sniperbot_pss_mb": round(one["Pss"] / 1024, 1),
            "imported_sniperbot_rss_mb": round(one["Rss"] / 1024, 1),
        }
    finally:
        for proc in (*bare, loaded):
            proc.kill()
            proc.wait()


def main() -> int:
    """Start the default node, measure its tree, stop it, measure the floors; print; emit JSON."""
    args = parse_args(__doc__.splitlines()[0])
    settle_s = 3.0 if args.quick else 6.0
    with short_tmp("sb-mem-") as work:
        node = NodeProcess(work, None, name="run", duration_s=30)
        try:
            workers = node.wait_ready(25)
            actors = {w["pid"]: w["id"] for w in workers.values() if w["placement"] == "process"}
            threads = sorted(w["id"] for w in workers.values() if w["placement"] != "process")
            pids = descendants(node.pid)
            cpu_before = {pid: cpu_s(pid) for pid in pids}
            t0 = time.monotonic()
            time.sleep(settle_s)
            node.check_alive()
            wait_for(lambda: set(actors) <= set(descendants(node.pid)), 2, "actor pids unchanged")
            pids = [p for p in descendants(node.pid) if p in cpu_before]
            window = time.monotonic() - t0
            rows = []
            for pid in pids:
                mem = smaps_rollup(pid)
                cpu = (cpu_s(pid) - cpu_before[pid]) / window * 100
                what = label(pid, node.pid, actors)
                rows.append({"pid": pid, "what": what, "cpu_pct": round(cpu, 1), **mem})
        finally:
            code = node.stop()
        floor = reference(work, len(rows))

    total = {k: sum(r[k] for r in rows) for k in ("Pss", "Rss", "Uss")}
    pss_mb = total["Pss"] / 1024
    print(
        f"default node, {len(rows)} processes ({len(actors)} actor processes; "
        f"thread actors: {threads or 'none'}); CPU over the {settle_s:.0f} s settle window"
    )
    print(f"  {'pid':>7}  {'process':<22} {'PSS MB':>8} {'RSS MB':>8} {'USS MB':>8} {'CPU %':>6}")
    for r in rows:
        print(
            f"  {r['pid']:>7}  {r['what'][:22]:<22} {r['Pss'] / 1024:8.1f} {r['Rss'] / 1024:8.1f} "
            f"{r['Uss'] / 1024:8.1f} {r['cpu_pct']:6.1f}"
        )
    print(
        f"  {'total':>7}  {'':<22} {pss_mb:8.1f} {total['Rss'] / 1024:8.1f} {total['Uss'] / 1024:8.1f} "
        f"{sum(r['cpu_pct'] for r in rows):6.1f}"
    )
    print(f"node exit code after SIGTERM: {code}")
    print(
        f"floor: {floor['bare_interpreters']} bare python interpreters side by side: "
        f"PSS {floor['bare_total_pss_mb']} MB (RSS {floor['bare_total_rss_mb']} MB); "
        f"one interpreter with sniperbot's node and actor modules imported: "
        f"PSS {floor['imported_sniperbot_pss_mb']} MB (RSS {floor['imported_sniperbot_rss_mb']} MB)"
    )
    r = ratio(pss_mb, floor["bare_total_pss_mb"])
    print(f"ratio node PSS / bare interpreters PSS: {r}")
    ok = pss_mb < TARGET_PSS_MB
    print(
        f"total PSS {pss_mb:.1f} MB < {TARGET_PSS_MB:.0f} MB: {verdict(ok)}   "
        f"(total RSS {total['Rss'] / 1024:.1f} MB)"
    )
    emit(
        "memory",
        {
            "processes": len(rows),
            "total_pss_mb": round(pss_mb, 1),
            "total_rss_mb": round(total["Rss"] / 1024, 1),
            "total_uss_mb": round(total["Uss"] / 1024, 1),
            "target_pss_mb": TARGET_PSS_MB,
            "target_met": ok,
            "ratio_vs_bare": r,
            "settle_s": settle_s,
            "per_process": [
                {
                    "what": x["what"],
                    "pid": x["pid"],
                    "pss_mb": round(x["Pss"] / 1024, 1),
                    "rss_mb": round(x["Rss"] / 1024, 1),
                    "uss_mb": round(x["Uss"] / 1024, 1),
                    "cpu_pct": x["cpu_pct"],
                }
                for x in rows
            ],
            "floor": floor,
            "node_exit": code,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
