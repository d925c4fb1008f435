"""The EC2-model phase's numbers: summary per (service time, table count, contender), the
targets, markdown for BENCHMARKS.md, console text and benchmarks-model.png."""

import time

from analysis import summary
from report import _mmm, _ms, _x

ORDER = ["floor", "warm", "cold", "warm-role", "cold-role", "seed", "awscli", "agent"]
# The address modes' cell (model.MODES): the route claim with 1 table beside the two modes.
MODES_ORDER = ["floor", "warm", "cold", "warm-private-ip", "cold-private-ip", "warm-eip", "cold-eip"]
OTHERS = ("seed", "awscli", "agent")


def _good(r):
    return r["ok"] and r["verified"]


def _median(s):
    return s["median"] if s else None


def _ratio(a, b):
    return a / b if a is not None and b else None


def summarise(results, order=ORDER):
    out = {}
    for latency in results["latencies"]:
        per_l = {}
        for n in results["tables"]:
            per = {}
            for key in order:
                runs = [r for r in results["runs"]
                        if r["latency_ms"] == latency and r["tables"] == n and r["contender"] == key]
                if not runs:
                    continue
                good = [r for r in runs if _good(r)]
                actions = {}
                for r in good:
                    for a, k in (r.get("requests") or {}).items():
                        actions[a] = actions.get(a, 0) + k
                per[key] = {
                    "runs": len(runs), "ok": len(good),
                    "claim": summary(r["claim_ms"] for r in good),
                    "in_process": summary(r.get("in_process_ms") for r in good),
                    "switch": summary(r.get("switch_commit_ms") for r in good),
                    "visible": summary(r.get("visible_ms") for r in good),
                    "rounds": summary(r.get("rounds") for r in good),
                    "rounds_served": summary(r.get("rounds_served") for r in good),
                    "rounds_to_write": summary(r.get("rounds_to_write") for r in good),
                    "rounds_after_write": summary(r.get("rounds_after_write") for r in good),
                    "moto_busy": summary(r.get("moto_busy_ms") for r in good),
                    "throttled": summary(r.get("throttled") for r in runs),
                    "requests": {a: round(k / len(good), 1) for a, k in sorted(actions.items())} if good else {},
                    "errors": sorted({str(r["error"])[:200] for r in runs if not _good(r) and r.get("error")})[:3],
                }
                seqs = {}
                for r in good:
                    if r.get("round_actions") is not None:
                        seqs[r["round_actions"]] = seqs.get(r["round_actions"], 0) + 1
                if seqs:  # the rounds as the proxy logged them, most frequent first
                    per[key]["round_actions"] = sorted(([k, v] for k, v in seqs.items()), key=lambda kv: -kv[1])
                unconfirmed = [r for r in good if r.get("confirmed") is False]
                if unconfirmed:
                    per[key]["unconfirmed"] = len(unconfirmed)
            floor = per.get("floor", {})
            for s in per.values():
                s["claim_x"] = _ratio(_median(s["claim"]), _median(floor.get("claim")))
                s["switch_x"] = _ratio(_median(s["switch"]), _median(floor.get("switch")))
                s["visible_x"] = _ratio(_median(s["visible"]), _median(floor.get("visible")))
            per_l[str(n)] = per
        out[str(latency)] = per_l
    return out


def _span(s):
    if not s:
        return "–"
    return f"{s['median']:g}" if s["min"] == s["max"] else f"{s['median']:g} ({s['min']:g}–{s['max']:g})"


def _delta(with_, without):
    """'with / without (+diff)' of two summaries' medians, ms."""
    if not with_ or not without:
        return "–"
    a, b = with_["median"], without["median"]
    return f"{_ms(a)} / {_ms(b)} ({a - b:+.0f})"


def role_costs(results):
    """[service time, tables, warm claim, cold switch, cold claim in process]: with / without role_arn."""
    rows = []
    for latency, per_l in results["summary"].items():
        for n, per in per_l.items():
            warm, warm_role = per.get("warm", {}), per.get("warm-role", {})
            cold, cold_role = per.get("cold", {}), per.get("cold-role", {})
            cells = [_delta(warm_role.get("claim"), warm.get("claim")),
                     _delta(cold_role.get("switch"), cold.get("switch")),
                     _delta(cold_role.get("in_process"), cold.get("in_process"))]
            if any(c != "–" for c in cells):
                rows.append([f"{latency} ms", n, *cells])
    return rows


# The features issue 15 asks the cost of that have no mode in the library yet: a row that says so
# rather than a number (the bench measures them once zfhost can claim in those modes).
NOT_YET = (("`mode=eip`: claim of an Elastic IP (`AssociateAddress`)", "not yet measured: the mode is being written"),
           ("`mode=private-ip`: claim of a secondary private IP (`AssignPrivateIpAddresses`)",
            "not yet measured: the mode is being written"))


MODE_LABEL = {"route": "`mode=route`, 1 table (`ReplaceRoute`)",
              "private-ip": "`mode=private-ip` (`AssignPrivateIpAddresses`)",
              "eip": "`mode=eip` (`AssociateAddress`)"}
MODE_KEYS = {"route": ("warm", "cold"), "private-ip": ("warm-private-ip", "cold-private-ip"),
             "eip": ("warm-eip", "cold-eip")}


def mode_rows(modes):
    """[(service time, mode, warm summary, cold summary, warm route, cold route)] of the modes' cell."""
    rows = []
    for latency, per_l in modes["summary"].items():
        for n, per in per_l.items():
            route = (per.get("warm"), per.get("cold"))
            for mode, (w, c) in MODE_KEYS.items():
                if per.get(w) or per.get(c):
                    rows.append((latency, mode, per.get(w), per.get(c), *route))
    return rows


def _vs(s, ref, key="claim"):
    """'median (×ref)' of a summary's metric against the reference's."""
    if not s or not s.get(key):
        return "–"
    a = s[key]["median"]
    b = _median((ref or {}).get(key))
    return f"{_ms(a)}" + (f" ({_x(a / b)})" if b else "")


def _split_rounds(s):
    """'to the write + read-backs' of a summary's rounds: '2 + 2 (1–3)'."""
    if not s or not s.get("rounds_to_write"):
        return _span((s or {}).get("rounds"))
    return f"{_span(s['rounds_to_write'])} + {_span(s['rounds_after_write'])}"


def modes_markdown(modes):
    """The address modes' cell: medians, ×the route claim with 1 table of the same run, rounds."""
    m = modes.get("machine") or {}
    lib = m.get("library") or {}
    args = modes.get("args") or {}
    L = [f"The address modes, measured in a cell of their own (run {modes.get('started')}, "
         f"{args.get('model_runs', '?')} runs per contender and service time, interleaved run by run; load "
         f"average {(m.get('loadavg_start') or [0])[0]:.2f} at the start, {(m.get('loadavg_end') or [0])[0]:.2f} at "
         f"the end, **on the same shared 2-core machine**" + (f"; library sha256 {lib.get('sha256')}…, built "
         f"{lib.get('built')}, at commit {lib.get('commit')}" + (" with uncommitted changes in src/"
                                                                if lib.get("src_modified_since_commit") else "")
         if lib else "") + "): one world with both members in one subnet, a secondary private IP and an "
         "Elastic IP; each claim moves the address (or the route) from the other member to the claiming one "
         "(put back straight at moto between runs); the same model, TLS path and service times as above. "
         "Ratios are to irisvip's route claim with 1 table **of this cell** (same world, same run), warm to "
         "warm and cold to cold; compare the absolute times with the cells above only loosely (another run, "
         "another library build).", ""]
    L.append("| service time | what moves | warm: claim ms, median (×route) | cold: claim in process "
             "(load + claim) (×route) | cold: spawn → exit (×route) | warm: switch / every reader sees it, ms | "
             "rounds warm / cold: to the write + read-backs ¹ | EC2 requests per warm claim | runs ok warm / cold |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for latency, mode, w, c, wr, cr in mode_rows(modes):
        ok = f"{w['ok']}/{w['runs']}" if w else "–"
        ok += f" / {c['ok']}/{c['runs']}" if c else " / –"
        unconf = sum((x or {}).get("unconfirmed", 0) for x in (w, c))
        if unconf:
            ok += f" ({unconf} unconfirmed)"
        sw = (f"{_ms(_median(w['switch']))} / {_ms(_median(w['visible']))}" if w else "–")
        rounds = f"{_split_rounds(w)} / {_split_rounds(c)}"
        reqs = ", ".join(f"{a} {v:g}" for a, v in (w or {}).get("requests", {}).items()) or "–"
        label = MODE_LABEL[mode] if mode != "route" else f"{MODE_LABEL[mode]} (reference)"
        L.append(f"| {latency} ms | {label} | {_vs(w, wr)} | {_vs(c, cr, 'in_process')} | {_vs(c, cr)} | {sw} | "
                 f"{rounds} | {reqs} | {ok} |")
    L.append("")
    L.append("¹ sequential rounds of EC2 requests (median, range), counted from the proxy's log as above: the "
             "rounds up to and including the write, then the read-back rounds after it (reads until EC2's eventually "
             "consistent answer shows the change: their number follows the consistency window each run draws, the "
             "same draws for every contender). The rounds as logged, most frequent sequence per contender (runs "
             "with it / runs), at each service time:")
    L.append("")
    for latency, per_l in modes["summary"].items():
        for n, per in per_l.items():
            for key in MODES_ORDER:
                c = per.get(key)
                if not c or key == "floor" or not c.get("round_actions"):
                    continue
                seq, k = c["round_actions"][0]
                more = len(c["round_actions"]) - 1
                L.append(f"- {latency} ms, {key}: `{seq}` ({k}/{c['ok']})"
                         + (f"; {more} other sequence(s), e.g. `{c['round_actions'][1][0]}`" if more else ""))
    L.append("")
    return L


MIB = 1024.0 * 1024.0


def measure_sizes(lib, dist, before):
    """Sizes of the library measured (test build), of the `make dist` build if there is one, and
    of the builds measured by the moto phase's last run (`before`: bench/results.json's cost)."""
    import os

    import sosize

    def one(path):
        if not path or not os.path.exists(path):
            return None
        a = sosize.analyse(path)
        return {"path": path, "bytes": a["bytes"], "stripped_bytes": a["stripped_bytes"],
                "mtime": os.path.getmtime(path), "sections": a["sections"]}

    out = {"test": one(lib), "dist": one(dist)}
    if before:
        out["before"] = {"test": (before.get("so") or {}).get("stripped_bytes"),
                         "dist": (before.get("so_dist") or {}).get("bytes"),
                         "commit": before.get("commit"), "run": before.get("run")}
    return out


def size_rows(sizes):
    """[build, now, before, change] rows of the size table, MiB."""
    rows = []
    before = sizes.get("before") or {}
    for key, label, metric in (("test", "test build (`cargo build --release`), stripped (`strip --strip-all`)",
                                "stripped_bytes"),
                               ("dist", "`make dist` build as shipped (fat LTO, `strip --strip-unneeded`)", "bytes")):
        one = sizes.get(key) or {}
        now_b, then_b = one.get(metric), before.get(key)
        # Which build: the dist library may be built later than the runs, from a later commit.
        built = (f" (sha256 {one['sha256']}…, built {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(one['mtime']))})"
                 if one.get("sha256") and one.get("mtime") else "")
        now_s = (f"**{now_b / MIB:.1f} MiB**{built}" if now_b
                 else "not measured: no `dist/libirisvip.so` (run `make dist`)")
        then_s = f"{then_b / MIB:.1f} MiB" if then_b else "–"
        change = f"{(now_b - then_b) / MIB:+.1f} MiB ({100.0 * (now_b - then_b) / then_b:+.0f}%)" if now_b and then_b else "–"
        rows.append([label, now_s, then_s, change])
    return rows


def bucket_forced_ms(results, n, latency, rounds=2):
    """What EC2's mutating bucket forces on a claim of n tables: the writes beyond the bucket's
    size wait for refills, which arrive once a second ("second" mode: ceil((n - size) / refill)
    seconds after the first write reached the bucket; in continuous mode (n - size) / refill),
    plus `rounds` service times: the write and the read-back, a claim's physical minimum."""
    import math

    th = results["model_config"]["throttle"]
    m = th["categories"]["mutating"]
    over = max(0.0, n - m["size"])
    if not over or not m["refill"]:
        wait = 0.0
    elif th.get("refill_mode", "second") == "second":
        wait = math.ceil(over / m["refill"]) * 1000.0
    else:
        wait = over / m["refill"] * 1000.0
    return wait + rounds * latency


def targets(results):
    """[(target, measured, met)] for issue 15's targets under the model."""
    s = results["summary"]
    rows = []
    for latency, per_l in s.items():
        for n in ("16", "64"):
            per = per_l.get(n, {})
            w, f = per.get("warm"), per.get("floor")
            if not w or not f:
                continue
            tag = f"{n} tables, {latency} ms"
            for key, label in (("switch", "switch (EC2 has every write)"), ("visible", "switch (every table visible)")):
                x = w[f"{key}_x"]
                rows.append((f"{label} ≤ 1.5× floor, {tag}",
                             f"{_ms(_median(w[key]))} vs {_ms(_median(f[key]))} ms = {_x(x)}", x is not None and x <= 1.5))
            x = w["claim_x"]
            # A claim that confirms cannot return before its writes are visible: say how it
            # compares with the floor's own time until visible, too.
            xv = _ratio(_median(w["claim"]), _median(f["visible"]))
            rows.append((f"claim ≤ 2.2× floor, {tag}",
                         f"{_ms(_median(w['claim']))} vs {_ms(_median(f['claim']))} ms = {_x(x)} "
                         f"(vs the floor's writes all visible, {_ms(_median(f['visible']))} ms: {_x(xv)})",
                         x is not None and x <= 2.2))
    for latency, per_l in s.items():
        for n, per in per_l.items():
            w, c = per.get("warm"), per.get("cold")
            if w and c and w["claim"] and c["in_process"]:
                extra = c["in_process"]["median"] - w["claim"]["median"]
                spawn = c["claim"]["median"] - w["claim"]["median"] if c["claim"] else None
                # The switch (last write answered) shows the cold start's cost without the
                # read-back's pauses, which quantize the claim (see the role_arn note).
                sw = (_median(c["switch"]) - _median(w["switch"])) if c["switch"] and w["switch"] else None
                rows.append((f"cold claim ≤ warm + 60 ms, {n} tables, {latency} ms (inside the process: load + claim)",
                             f"{_ms(c['in_process']['median'])} − {_ms(w['claim']['median'])} ms = {extra:+.0f} ms"
                             + (f" (spawn → exit: {spawn:+.0f} ms)" if spawn is not None else "")
                             + (f"; to the last write: {_ms(_median(c['switch']))} − {_ms(_median(w['switch']))} = "
                                f"{sw:+.0f} ms" if sw is not None else ""),
                             extra <= 60.0))
    for latency, per_l in s.items():
        for n, per in per_l.items():
            others = {k: v for k, v in per.items() if k in OTHERS}
            mine = [per[k] for k in ("warm", "cold") if k in per]
            if not others or not mine:
                continue
            # One row per cell: the slower of irisvip warm and cold against the best other
            # contender, for the claim, the switch and every table visible.
            parts, ok = [], True
            for key, label in (("claim", "claim"), ("switch", "switch"), ("visible", "visible")):
                slowest = max((_median(m[key]) for m in mine if m[key]), default=None)
                # A contender with no good run (it failed under throttling) is behind by definition.
                done = {k: _median(v[key]) for k, v in others.items() if v[key]}
                best = min(done, key=done.get) if done else None
                ok = ok and slowest is not None and (best is None or slowest < done[best])
                parts.append(f"{label} {_ms(slowest)} vs {_ms(done[best])} ({best})" if best
                             else f"{label} {_ms(slowest)} vs –")
            failed = sorted(k for k, v in others.items() if not v["claim"])
            rows.append((f"irisvip (warm and cold) ahead of every other contender, {n} tables, {latency} ms",
                         "; ".join(parts) + " ms" + (f"; no good run: {', '.join(failed)}" if failed else ""), ok))
    for latency, per_l in s.items():
        per = per_l.get("64", {})
        for key in ("warm", "cold"):
            c = per.get(key)
            if not c or not c["claim"]:
                continue
            forced = bucket_forced_ms(results, 64, float(latency))
            v = c["in_process"]["median"] if key == "cold" and c["in_process"] else c["claim"]["median"]
            f = per.get("floor")
            floor_note = (f"; the floor, which sends its shares at the refills, took {_ms(f['claim']['median'])} ms"
                          if f and f["claim"] else "")
            rows.append((f"claim ≤ 1.2× what the bucket forces, 64 tables, {latency} ms, irisvip {key}",
                         f"{_ms(v)} ms vs 1.2 × {forced:.0f} = {1.2 * forced:.0f} ms ({v / forced:.2f}×){floor_note}",
                         v <= 1.2 * forced))
    return rows


def markdown(results):
    m, s = results["machine"], results["summary"]
    cfg = results["model_config"]
    cats = cfg["throttle"]["categories"]
    L = []
    L.append(f"Machine: {m['nproc']} × {m['cpu']}, {m['memory']}, Linux {m['kernel']} ({m.get('os')}); "
             f"load average at start {m['loadavg_start'][0]:.2f}, at end {m.get('loadavg_end', [0])[0]:.2f}. "
             f"moto {m['moto']} (lean), boto3 {m['boto3']}, {m.get('awscli') or 'aws CLI: none'}, "
             f"resource-agents {m.get('resource_agents') or 'none'}, {m.get('rustc')}. "
             f"{results['args']['model_runs']} runs per cell for floor, warm and cold, "
             f"{results['args']['model_slow_runs']} for seed, aws CLI and agent; run {results['started']}. "
             "**The machine has 2 cores and is shared with other work** (other sessions' cargo builds may run "
             "during the phase): absolute times are noisy, so read the ratios, which compare contenders measured "
             "side by side, interleaved run by run, in this one run.")
    lib = m.get("library") or {}
    if lib:
        L.append("")
        L.append(f"Library measured: libirisvip.so sha256 {lib['sha256']}…, built {lib['built']}, at commit "
                 f"{lib['commit']}" + (" with uncommitted changes in src/" if lib.get("src_modified_since_commit")
                                      else "") + ".")
    L.append("")
    L.append(f"Model: service time {', '.join(str(x) for x in results['latencies'])} ms per request (in parallel); "
             f"token buckets per action at EC2's defaults (mutating {cats['mutating']['size']:g} + "
             f"{cats['mutating']['refill']:g}/s, non-mutating {cats['non_mutating']['size']:g} + "
             f"{cats['non_mutating']['refill']:g}/s, refill `{cfg['throttle']['refill_mode']}`, fresh before each run); "
             f"eventual consistency: each write invisible to describes for a window uniform in "
             f"[{results['window_ms'][0]:g}, {results['window_ms'][1]:g}] ms (RNG seeded with the run's index); "
             "HTTPS through the proxy for every contender.")
    L.append("")
    for latency, per_l in s.items():
        L.append(f"#### Service time {latency} ms")
        L.append("")
        L.append("| tables | contender | claim ms min / **median** / max | claim ×floor | switch: EC2 has it, ms | "
                 "×floor | every table visible, ms | ×floor | rounds: all / served ¹ | throttled per run | EC2 requests per run | "
                 "moto busy ² | runs ok |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n, per in per_l.items():
            for key in ORDER:
                c = per.get(key)
                if not c:
                    why = results["unavailable"].get(f"{key}@{n}") or results["unavailable"].get(key)
                    if why:
                        L.append(f"| {n} | {key} | not run: {why} | | | | | | | | | | |")
                    continue
                claim = _mmm(c["claim"])
                if c["in_process"]:
                    claim += f" (in process **{_ms(c['in_process']['median'])}**)"
                rounds = f"{_span(c['rounds'])} / {_span(c['rounds_served'])}"
                th = c["throttled"]
                thr = "–" if not th else f"{th['median']:g}" + (f" (max {th['max']:g})" if th["max"] != th["median"] else "")
                reqs = ", ".join(f"{a} {v:g}" for a, v in c["requests"].items()) or "–"
                L.append(f"| {n} | {key} | {claim} | {_x(c['claim_x'])} | {_ms(_median(c['switch']))} | "
                         f"{_x(c['switch_x'])} | {_ms(_median(c['visible']))} | {_x(c['visible_x'])} | {rounds} | "
                         f"{thr} | {reqs} | {_ms(_median(c['moto_busy']))} | {c['ok']}/{c['runs']} |")
                for e in c["errors"]:
                    L.append(f"| | ↳ error: {e.replace('|', '/')} | | | | | | | | | | | |")
        L.append("")
    L.append("¹ sequential rounds of EC2 requests on the critical path (median, range): requests whose "
             "[arrival, answer] intervals overlap form one round; *served* leaves out the requests EC2 "
             "throttled (rounds spent waiting for tokens).  ")
    L.append("² ms (median) between call and return in which moto was serving at least one request, the model's "
             "reads of each written table before and after the write included: moto serves one request at a "
             "time, so this is serial work that EC2 does in parallel, part of every time in the table.  ")
    L.append("Claim: call → return (fresh processes: spawn → exit; cold also inside the process, load + first "
             "claim). Switch: call → the model answered the last write pointing a table at the new member. "
             "Visible: call → every table's new version visible to `DescribeRouteTables` through the model.")
    L.append("")
    L.extend(features_markdown(results))
    L.append("#### Targets under the model")
    L.append("")
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    for t, v, ok in targets(results):
        L.append(f"| {t} | {v} | {'yes' if ok else '**no**'} |")
    L.append("")
    return "\n".join(L)


def features_markdown(results):
    """What the new features cost: role_arn per cell, the modes not measured yet, the library's size."""
    L = ["#### What the new features cost", ""]
    role = role_costs(results)
    L.append("`role_arn`: AssumeRole at moto's STS, through the proxy, after the same service time as an EC2 "
             "request (no bucket). Medians with / without `role_arn`, measured side by side in this run, ms "
             "(difference):")
    L.append("")
    L.append("| service time | tables | warm: claim (role cached per process) | cold: switch (spawn → last write "
             "answered) | cold: claim in process (load + claim) |")
    L.append("|---|---|---|---|---|")
    for row in role:
        L.append("| " + " | ".join(row) + " |")
    if not role:
        L.append("| – | – | not measured in this run (`--model-contenders` without warm-role/cold-role) | | |")
    L.append("")
    L.append("The cold switch carries the AssumeRole round without the noise of the read-back: a claim confirms "
             "by reading back with pauses of 50, 100, 200, 400 ms…, so a claim whose writes land a few ms later "
             "can miss a read and wait a whole pause more; its differences are that quantization as much as "
             "the role's cost.")
    L.append("")
    modes = results.get("modes") or {}
    if modes.get("summary"):
        L.extend(modes_markdown(modes))
    else:
        L.append("| feature | cost |")
        L.append("|---|---|")
        for what, why in NOT_YET:
            L.append(f"| {what} | {why} |")
        L.append("")
    sizes = results.get("sizes")
    if sizes:
        before = sizes.get("before") or {}
        L.append(f"The library's size after the new dependencies (hickory resolver, STS), against the builds the "
                 f"moto phase measured last ({before.get('run') or '?'}, commit {before.get('commit') or '?'}):")
        L.append("")
        L.append("| build | now | before | change |")
        L.append("|---|---|---|---|")
        for row in size_rows(sizes):
            L.append("| " + " | ".join(row) + " |")
        L.append("")
    return L


def console(results):
    s = results["summary"]
    L = []
    head = (f"{'svc ms':>6} {'tables':>6} {'contender':<8} {'claim':>9} {'x floor':>8} {'switch':>9} {'x floor':>8} "
            f"{'visible':>9} {'x floor':>8} {'rounds':>6} {'thr':>5} {'ok':>6}")
    L.append(head)
    L.append("-" * len(head))
    for latency, per_l in s.items():
        for n, per in per_l.items():
            for key in ORDER:
                c = per.get(key)
                if not c:
                    continue
                L.append(f"{latency:>6} {n:>6} {key:<8} {_ms(_median(c['claim'])):>9} {_x(c['claim_x']):>8} "
                         f"{_ms(_median(c['switch'])):>9} {_x(c['switch_x']):>8} {_ms(_median(c['visible'])):>9} "
                         f"{_x(c['visible_x']):>8} {_ms(_median(c['rounds'])):>6} {_ms(_median(c['throttled'])):>5} "
                         f"{str(c['ok']) + '/' + str(c['runs']):>6}")
    L.append("")
    modes = results.get("modes") or {}
    if modes.get("summary"):
        L.append("address modes (x route claim with 1 table, same cell):")
        for latency, mode, w, c, wr, cr in mode_rows(modes):
            L.append(f"{latency:>6} {mode:<10} warm {_vs(w, wr):>16}  cold in process {_vs(c, cr, 'in_process'):>16}"
                     f"  rounds {_split_rounds(w)} / {_split_rounds(c)}")
        L.append("")
    for t, v, ok in targets(results):
        L.append(f"[{'met' if ok else 'NOT met'}] {t}: {v}")
    return "\n".join(L)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 - the formatters below

    from plot import COLORS, LABELS

    s = results["summary"]
    lats = list(s.keys())
    fig, axes = plt.subplots(2, len(lats), figsize=(5.2 * len(lats), 8.4), sharey="row", squeeze=False)
    rows = (("claim", "claim (call → return)"), ("visible", "every table visible to describes"))
    for col, latency in enumerate(lats):
        for row, (metric, title) in enumerate(rows):
            ax = axes[row][col]
            for key in ORDER:
                xs, meds, lo, hi = [], [], [], []
                for n, per in s[latency].items():
                    st = (per.get(key) or {}).get(metric)
                    if not st:
                        continue
                    xs.append(int(n))
                    meds.append(st["median"])
                    lo.append(st["median"] - st["min"])
                    hi.append(st["max"] - st["median"])
                if xs:
                    ax.errorbar(xs, meds, yerr=[lo, hi], marker="o", ms=4, capsize=2, lw=1.4, elinewidth=0.7,
                                color=COLORS[key], label=LABELS[key])
            if metric == "claim":
                ns = [int(n) for n in s[latency].keys()]
                forced = [bucket_forced_ms(results, n, float(latency)) for n in ns]
                ax.plot(ns, [v if v > 0 else float("nan") for v in forced], ls=":", lw=1.2,
                        color="black", label="2 service times + bucket refill")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            # Plain milliseconds on the log axis (not 3×10³): easier to read off.
            plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ticks = [int(n) for n in s[latency].keys()]
            ax.set_xticks(ticks)
            ax.set_xticklabels([str(t) for t in ticks])
            ax.set_xlabel("route tables")
            ax.set_title(f"{title}, service time {latency} ms", fontsize=10)
            ax.grid(which="both", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("ms (median; bars: min–max)")
    m = results["machine"]
    fig.suptitle(f"Moving the VIP through the EC2 model (HTTPS, default buckets, consistency window "
                 f"{results['window_ms'][0]:g}–{results['window_ms'][1]:g} ms)\n{m['nproc']} × {m['cpu']}, "
                 "shared with other work", fontsize=11)
    # One legend under the panels: inside, it would hide the slow contenders' first points.
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


BEGIN, END = "<!-- bench:model:begin -->", "<!-- bench:model:end -->"
