"""The numbers as tables: a summary per (table count, contender), markdown and console text."""

from analysis import ratio, summary

ORDER = ["floor", "warm", "cold", "warm-dist", "cold-dist", "warm-role", "cold-role", "seed", "awscli", "agent"]
TITLES = {
    "floor": "floor (ReplaceRoute per table, warm connection)",
    "warm": "irisvip warm (library loaded)",
    "cold": "irisvip cold (fresh process: load + first claim)",
    "warm-dist": "irisvip warm, `make dist` build (fat LTO)",
    "cold-dist": "irisvip cold, `make dist` build (fat LTO)",
    "warm-role": "irisvip warm, `role_arn` (STS AssumeRole, cached per process)",
    "cold-role": "irisvip cold, `role_arn` (AssumeRole before the first EC2 call)",
    "seed": "seed approach (fresh Python, boto3, delete+create)",
    "awscli": "aws CLI replace-route per table (shell)",
    "agent": "aws-vpc-move-ip start (resource-agents)",
}
MIB = 1024.0


def _good(r):
    return r["ok"] and r["verified"]


def _actions(runs):
    """Requests per run by action, as in the median run (rounded mean per action)."""
    if not runs:
        return {}
    total = {}
    for r in runs:
        for a, n in (r.get("actions") or {}).items():
            total[a] = total.get(a, 0) + n
    return {a: round(n / len(runs), 1) for a, n in sorted(total.items())}


def summarise(results):
    out = {}
    tables = sorted({r["tables"] for r in results["runs"]})
    for n in tables:
        per = {}
        for key in ORDER:
            runs = [r for r in results["runs"] if r["tables"] == n and r["contender"] == key]
            if not runs:
                continue
            quiet = [r for r in runs if r["phase"] == "quiet" and _good(r)]
            polled = [r for r in runs if r["phase"] == "polled" and _good(r)]
            base = quiet or polled
            per[key] = {
                "runs": len(runs), "ok": sum(1 for r in runs if _good(r)),
                "claim": summary(r["claim_ms"] for r in base),
                "claim_phase": "quiet" if quiet else "polled",
                "switch_poll": summary(r.get("switch_poll_ms") for r in polled),
                "switch_commit": summary(r.get("switch_commit_ms") for r in base),
                "noroute_polls": sum(r.get("noroute_polls", 0) for r in polled),
                "noroute_runs": sum(1 for r in polled if r.get("noroute_polls")),
                "polled_runs": len(polled),
                "split_polls": sum(r.get("split_polls", 0) for r in polled),
                "noroute_commit_ms": max([r.get("noroute_commit_ms", 0.0) for r in runs] or [0.0]),
                "requests": summary(r.get("requests") for r in quiet),
                "server_ms": summary(r.get("server_ms") for r in quiet),
                "actions": _actions(quiet),
                "errors": sorted({str(r["error"])[:200] for r in runs if not _good(r) and r.get("error")})[:3],
            }
        floor = per.get("floor", {})
        for key, s in per.items():
            s["claim_x"] = ratio(s["claim"], floor.get("claim"))
            s["switch_poll_x"] = ratio(s["switch_poll"], floor.get("switch_poll"))
            s["switch_commit_x"] = ratio(s["switch_commit"], floor.get("claim"))
        out[str(n)] = per
    return out


def _ms(v):
    if v is None:
        return "–"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def _mmm(s):
    if not s:
        return "–"
    return f"{_ms(s['min'])} / **{_ms(s['median'])}** / {_ms(s['max'])}"


def _x(v):
    return "–" if v is None else f"{v:.2f}×" if v < 10 else f"{v:.0f}×"


def targets(results):
    """[(target, measured, met)] for the issue's targets."""
    s, cost = results["summary"], results.get("cost", {})
    rows = []
    for n in ("1", "16"):
        w = s.get(n, {}).get("warm")
        if not w:
            continue
        rows.append((f"switch ≤ 2.2× floor, {n} table(s) (reader's view: poller / poller)",
                     _x(w["switch_poll_x"]), w["switch_poll_x"] is not None and w["switch_poll_x"] <= 2.2))
        rows.append((f"switch ≤ 2.2× floor, {n} table(s) (commit-side switch / floor claim)",
                     _x(w["switch_commit_x"]), w["switch_commit_x"] is not None and w["switch_commit_x"] <= 2.2))
        rows.append((f"claim ≤ 3.5× floor, {n} table(s)", _x(w["claim_x"]),
                     w["claim_x"] is not None and w["claim_x"] <= 3.5))
    for n, per in s.items():
        cold, seed = per.get("cold"), per.get("seed")
        if cold and seed and cold["claim"] and seed["claim"]:
            r = cold["claim"]["median"] / seed["claim"]["median"]
            rows.append((f"cold claim ≤ 1/10 of the seed approach, {n} table(s)",
                         f"{_ms(cold['claim']['median'])} vs {_ms(seed['claim']['median'])} ms = 1/{1 / r:.0f}",
                         r <= 0.1))
        if cold and cold["claim"]:
            others = {k: v for k, v in per.items() if k in ("seed", "awscli", "agent") and v.get("claim")}
            if others:
                best = min(others, key=lambda k: others[k]["claim"]["median"])
                rows.append((f"cold claim ahead of every other contender, {n} table(s)",
                             f"{_ms(cold['claim']['median'])} ms vs best other ({best}) "
                             f"{_ms(others[best]['claim']['median'])} ms",
                             cold["claim"]["median"] < others[best]["claim"]["median"]))
    for key in ("warm", "cold"):
        polls = sum(per.get(key, {}).get("noroute_polls", 0) for per in s.values())
        gap = max([per.get(key, {}).get("noroute_commit_ms", 0.0) for per in s.values()] or [0.0])
        if any(key in per for per in s.values()):
            rows.append((f"no-route window 0 for irisvip {key}", f"{polls} polls without a route, longest gap {gap:.1f} ms",
                         polls == 0 and gap == 0.0))
    g = cost.get("rss_growth_kib")
    if g:
        rows.append(("RSS growth (load + first claim) ≤ 20 MB", f"median {g['median'] / MIB:.1f} MiB, max {g['max'] / MIB:.1f} MiB",
                     g["max"] * 1024 <= 20e6))
    if cost.get("threads_created_max") is not None:
        rows.append(("threads created 0", f"max {cost['threads_created_max']} over {cost['calls_checked_for_threads']} calls",
                     cost["threads_created_max"] == 0))
    return rows


def markdown(results):
    m, s, cost = results["machine"], results["summary"], results.get("cost", {})
    L = []
    L.append(f"Machine: {m['nproc']} × {m['cpu']}, {m['memory']}, Linux {m['kernel']} ({m.get('os')}); "
             f"load average at start {m['loadavg_start'][0]:.2f}, at end {m.get('loadavg_end', [0])[0]:.2f}. "
             f"moto {m['moto']}, boto3 {m['boto3']}, {m.get('awscli') or 'aws CLI: none'}, "
             f"resource-agents {m.get('resource_agents') or 'none'}, {m.get('rustc')}. "
             f"{results['args']['runs']} runs per contender, table count and phase; run {results['started']}.")
    lib = m.get("library") or {}
    if lib:
        L.append("")
        L.append(f"Library measured: libirisvip.so sha256 {lib['sha256']}…, built {lib['built']}, at commit "
                 f"{lib['commit']}" + (" with uncommitted changes in src/" if lib.get("src_modified_since_commit")
                                      else "") + ".")
    L.append("")
    for n, per in s.items():
        poll = results["poll_ms"].get(n)
        L.append(f"#### {n} route table(s)" + (f" — one poll took {poll:.1f} ms (median)" if poll else ""))
        L.append("")
        L.append("| contender | claim ms min / **median** / max | claim ×floor | switch seen by poller, ms | "
                 "switch ×floor | switch committed, ms (median) | no-route polls (runs) | longest no-route, ms | "
                 "split polls ² | runs ok |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for key in ORDER:
            if key in per:
                c = per[key]
                claim = _mmm(c["claim"]) + (" ¹" if c["claim_phase"] == "polled" else "")
                L.append(f"| {TITLES[key]} | {claim} | {_x(c['claim_x'])} | {_mmm(c['switch_poll'])} | "
                         f"{_x(c['switch_poll_x'])} | {_ms(c['switch_commit']['median']) if c['switch_commit'] else '–'} | "
                         f"{c['noroute_polls']} ({c['noroute_runs']}/{c['polled_runs']}) | {c['noroute_commit_ms']:.1f} | "
                         f"{c['split_polls']} | {c['ok']}/{c['runs']} |")
                for e in c["errors"]:
                    L.append(f"|  ↳ error: {e.replace('|', '/')} | | | | | | | | | |")
            elif key in results["unavailable"]:
                L.append(f"| {TITLES[key]} | could not run: {results['unavailable'][key]} | | | | | | | | |")
        L.append("")
    L.append("¹ measured in the polled phase only (its claim sleeps 1 s per table three times over).  ")
    L.append("² polls (all runs) in which every table had a route but not all to the same member: clients in "
             "different subnets reach different members.")
    L.append("")
    L.append("#### Where a claim's time goes (quiet phase, from moto's request log)")
    L.append("")
    L.append("| tables | contender | EC2 requests per claim | moto busy, ms (median) | claim, ms (median) | "
             "outside moto, ms |")
    L.append("|---|---|---|---|---|---|")
    for n, per in s.items():
        for key in ("floor", "warm", "cold", "warm-dist", "cold-dist", "seed", "awscli"):
            c = per.get(key)
            if not c or not c.get("server_ms") or not c.get("claim"):
                continue
            acts = ", ".join(f"{a} {v:g}" for a, v in c["actions"].items())
            L.append(f"| {n} | {key} | {acts} | {_ms(c['server_ms']['median'])} | {_ms(c['claim']['median'])} | "
                     f"{_ms(c['claim']['median'] - c['server_ms']['median'])} |")
    L.append("")
    so = cost.get("so")
    if so:
        L.append("#### Cost inside the host process")
        L.append("")
        L.append("| what | measured |")
        L.append("|---|---|")
        L.append(f"| libirisvip.so size | {so['bytes'] / MIB / MIB:.1f} MiB as built, "
                 f"**{so['stripped_bytes'] / MIB / MIB:.1f} MiB stripped** |")

        def kib(x):
            return f"{x['median'] / MIB:.1f} MiB (max {x['max'] / MIB:.1f})" if x else "–"

        lm = cost.get("load_ms")
        L.append(f"| load (dlopen + ZFInit + GetZFTable) | {_mmm(lm)} ms |")
        fc = cost.get("first_claim_in_process_ms") or {}
        if fc:
            L.append("| load + first claim, inside the process (quiet phase) | " + "; ".join(
                f"{n} table(s): {_mmm(v)} ms" for n, v in fc.items() if v) + " |")
        dist = cost.get("so_dist")
        if dist:
            L.append(f"| `make dist` library (profile `dist`: fat LTO, one codegen unit) | **{dist['stripped_bytes'] / MIB / MIB:.1f} "
                     f"MiB stripped** |")
        L.append(f"| RSS growth after load | {kib(cost.get('rss_growth_load_kib'))} |")
        L.append(f"| RSS growth after load + first claim | **{kib(cost.get('rss_growth_kib'))}** |")
        L.append(f"| threads created by the library | **{cost.get('threads_created_max')}** "
                 f"(over {cost.get('calls_checked_for_threads')} cold and warm calls) |")
        pb = cost.get("python_boto3_kib")
        if pb:
            L.append(f"| for comparison: Python interpreter, then + boto3 session/client/resource (seed way) | "
                     f"{pb['interpreter'] / MIB:.1f} MiB, then {pb['with_boto3'] / MIB:.1f} MiB "
                     f"(+{(pb['with_boto3'] - pb['interpreter']) / MIB:.1f} MiB) |")
        L.append("")
        L.append("Where the stripped library's bytes go (sections), and the symbols by crate (unstripped `nm -S`):")
        L.append("")
        secs = sorted(so["sections"].items(), key=lambda kv: -kv[1])[:6]
        L.append(", ".join(f"`{k}` {v / MIB / MIB:.2f} MiB" for k, v in secs) + ".")
        L.append("")
        total = sum(so["crates"].values())
        top = list(so["crates"].items())[:12]
        if total:
            L.append(", ".join(f"{k} {v / MIB / MIB:.2f} MiB ({100 * v / total:.0f}%)" for k, v in top) + ".")
        else:
            L.append("(no symbol table: this library was linked stripped; `IRISVIP_KEEP_SYMBOLS=1 cargo build "
                     "--release --lib` keeps it for the breakdown, as `make bench` does)")
        L.append("")
    L.append("#### Targets")
    L.append("")
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    for t, v, ok in targets(results):
        L.append(f"| {t} | {v} | {'yes' if ok else '**no**'} |")
    L.append("")
    return "\n".join(L)


def console(results):
    s = results["summary"]
    L = []
    head = f"{'tables':>6} {'contender':<8} {'claim med':>10} {'x floor':>8} {'switch(poll)':>13} {'x floor':>8} " \
           f"{'commit':>9} {'no-route polls':>15} {'gap ms':>8} {'ok':>7}"
    L.append(head)
    L.append("-" * len(head))
    for n, per in s.items():
        for key in ORDER:
            c = per.get(key)
            if not c:
                if key in results["unavailable"]:
                    L.append(f"{n:>6} {key:<8} could not run: {results['unavailable'][key]}")
                continue
            med = lambda x: _ms(x["median"]) if x else "–"  # noqa: E731
            L.append(f"{n:>6} {key:<8} {med(c['claim']):>10} {_x(c['claim_x']):>8} {med(c['switch_poll']):>13} "
                     f"{_x(c['switch_poll_x']):>8} {med(c['switch_commit']):>9} "
                     f"{str(c['noroute_polls']) + ' (' + str(c['noroute_runs']) + ')':>15} "
                     f"{c['noroute_commit_ms']:>8.1f} {str(c['ok']) + '/' + str(c['runs']):>7}")
    L.append("")
    for t, v, ok in targets(results):
        L.append(f"[{'met' if ok else 'NOT met'}] {t}: {v}")
    return "\n".join(L)


BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


def update_benchmarks_md(path, md, begin=BEGIN, end=END):
    """Replaces a generated part of BENCHMARKS.md (between the markers); the prose stays."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return False
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w") as f:
        f.write(f"{head}{begin}\n{md}\n{end}{tail}")
    return True
