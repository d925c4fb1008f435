"""Presenting a lab run: per-run timelines and summary lines, the results table, the JSON file
and the PNG plot. Reads recorded data and run dicts; decides nothing."""

import json
from collections import Counter

import analysis

# Metrics shown in the table, per scenario, in this order: (key, label).
TABLE = {
    1: [("claim_call_ms", "claim call (cold process)"), ("claim_to_router_ms", "claim -> router switched"),
        ("claim_to_first_reply_ms", "claim -> first reply from A")],
    2: [("downtime_ms", "downtime: last A -> first B"), ("claim_to_first_reply_ms", "B's claim -> first reply from B"),
        ("claim_call_ms", "claim call"), ("claim_to_router_ms", "claim -> router switched"),
        ("probe_gap_ms", "new connections: last A -> first B"), ("session_gap_ms", "session: last A -> first B")],
    3: [("downtime_ms", "gap: last A -> first B"), ("release_call_ms", "A's release call"),
        ("claim_call_ms", "B's claim call"), ("router_unreachable_ms", "router without a route"),
        ("claim_to_first_reply_ms", "B's claim -> first reply from B"), ("session_gap_ms", "session: last A -> first B")],
    4: [("downtime_ms", "takeover gap: last A -> first B"), ("claim_to_first_reply_ms", "B's claim -> first reply from B"),
        ("release_call_ms", "A's late release call"), ("after_release_failures", "failures after A's release"),
        ("after_release_replies", "replies after A's release (all B)")],
    5: [("downtime_ms", "gap: last B -> first A"), ("claim_call_ms", "A's claim call (cold process)"),
        ("claim_to_first_reply_ms", "claim -> first reply from A"), ("session_gap_ms", "session: last B -> first A")],
    6: [("downtime_ms", "downtime: last A -> first B"), ("claim_to_first_reply_ms", "B's claim -> first reply from B"),
        ("claim_call_ms", "claim call (address move)"), ("claim_to_router_ms", "claim -> VPC delivers to B"),
        ("probe_gap_ms", "new connections: last A -> first B"), ("session_gap_ms", "session: last A -> first B"),
        ("replies_from_a_after_switch", "replies from A after the move")],
}
COUNTS = ("after_release", "replies_from")  # metrics that are counts, not milliseconds
COLORS = {"A": "tab:blue", "B": "tab:orange", None: "lightgray"}


def rel(run, t):
    return (t - run["t_key"]) * 1000.0


def fmt(v, unit=" ms"):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    return f"{v:.1f}{unit}"


# -- timelines --------------------------------------------------------------------------------
def phases(samples):
    """Consecutive attempts with the same outcome (answered by A, by B, or failed) as one phase,
    in the order the attempts were made (t0): a timeout is shown when its request left."""
    out = []
    for s in sorted(samples, key=lambda s: s["t0"]):
        key = s["m"] if s["ok"] else "fail"
        if out and out[-1]["key"] == key:
            p = out[-1]
            p["end"], p["n"] = s["t0"], p["n"] + 1
            if not s["ok"]:
                p["errs"][s["err"]] += 1
        else:
            out.append({"key": key, "start": s["t0"], "end": s["t0"], "n": 1,
                        "errs": Counter([s["err"]] if not s["ok"] else [])})
    return out


def timeline(rec, run):
    """Lines of (relative ms, who, text) for one run, over its view window. Client lines are
    phases of attempts by the time they were made; a phase ends at its last attempt."""
    lo, hi = run["t_view"], run["t_end"]
    rows = []
    for m in rec.marks:
        if not lo <= m["t"] <= hi:
            continue
        setup = " (setup)" if m.get("setup") else ""
        if m["what"] in ("vip_claim", "vip_release"):
            cold = ", cold process" if m.get("cold") else ""
            rows.append((m["t"], "lab", f"{m['member']}: {m['what']} sent{setup}{cold}"))
            res = "ok" if m.get("ok") else f"FAILED {m.get('error')}"
            rows.append((m["t_done"], "lab", f"{m['member']}: {m['what']} returned {res}, holder {m.get('holder')}, "
                                             f"[{','.join(a or '-' for a in m.get('actions', []))}], "
                                             f"library {m.get('lib_ms')} ms, call {m.get('host_ms', 0):.1f} ms, "
                                             f"threads {m.get('threads')}"))
        else:
            took = f" (`ip link` took {m['ip_ms']} ms)" if "ip_ms" in m else ""
            rows.append((m["t"], "lab", f"{m['member']}: {m['what']}{setup}{took}"))
    for r in rec.routes:
        if lo <= r["t_applied"] <= hi:
            rows.append((r["t_applied"], "router", f"VIP {r['kernel']} ({r['member'] or r['state']}); the change "
                                                   f"reached EC2 within ({rel(run, r['t_after']):+.1f}, "
                                                   f"{rel(run, r['t_seen']):+.1f}] ms"))
    for kind, label in (("c", "probes"), ("s", "session")):
        window = [s for s in rec.samples if s["k"] == kind and lo <= s["t0"] <= hi]
        for p in phases(window):
            if p["key"] == "fail":
                what = "failed " + ", ".join(f"{e} x{n}" for e, n in p["errs"].most_common())
            else:
                what = f"answered by {p['key']} x{p['n']}"
            rows.append((p["start"], "client", f"{label}: {what} (last at {rel(run, p['end']):+.1f} ms)"))
    rows.sort(key=lambda r: r[0])
    return [f"  {rel(run, t):+9.1f} ms  {who:<6}  {text}" for t, who, text in rows]


def summary_line(run):
    m = run.get("metrics") or {}
    head = f"scenario {run['scenario']} ({run['name']}) run {run['rep']}:"
    s = run["scenario"]
    if s == 1:
        body = (f"claim call {fmt(m.get('claim_call_ms'))}, claim -> router {fmt(m.get('claim_to_router_ms'))}, "
                f"claim -> first reply from A {fmt(m.get('claim_to_first_reply_ms'))}")
    elif s == 2:
        body = (f"downtime {fmt(m.get('downtime_ms'))} (last A -> first B), B's claim -> first reply "
                f"{fmt(m.get('claim_to_first_reply_ms'))}, claim call {fmt(m.get('claim_call_ms'))}, "
                f"session gap {fmt(m.get('session_gap_ms'))}")
    elif s == 6:
        body = (f"downtime {fmt(m.get('downtime_ms'))} (last A -> first B), B's claim -> first reply "
                f"{fmt(m.get('claim_to_first_reply_ms'))}, claim call {fmt(m.get('claim_call_ms'))}, "
                f"session gap {fmt(m.get('session_gap_ms'))}, replies from A after the move "
                f"{m.get('replies_from_a_after_switch')}")
    elif s == 3:
        body = (f"gap {fmt(m.get('downtime_ms'))} (last A -> first B), release {fmt(m.get('release_call_ms'))} + "
                f"claim {fmt(m.get('claim_call_ms'))}, router without route {fmt(m.get('router_unreachable_ms'))}")
    elif s == 4:
        body = (f"after A's late release: {m.get('after_release_replies')} replies all from B, "
                f"{m.get('after_release_failures')} failures, {m.get('after_release_route_changes')} route changes; "
                f"takeover gap {fmt(m.get('downtime_ms'))}")
    else:
        body = (f"gap {fmt(m.get('downtime_ms'))} (last B -> first A), A's claim call {fmt(m.get('claim_call_ms'))}, "
                f"claim -> first reply {fmt(m.get('claim_to_first_reply_ms'))}")
    failed = [c["name"] + (f" ({c['detail']})" if c["detail"] else "") for c in run["checks"] if not c["ok"]]
    verdict = "PASS" if not failed and not run.get("errors") else "FAIL: " + "; ".join(failed + run.get("errors", []))
    return f"{head} {body} -- {verdict}"


# -- the table --------------------------------------------------------------------------------
def table(runs):
    lines = [f"{'scenario':<22} {'metric':<38} {'n':>3} {'min':>10} {'median':>10} {'max':>10}"]
    lines.append("-" * len(lines[0]))
    for sid in sorted({r["scenario"] for r in runs}):
        mine = [r for r in runs if r["scenario"] == sid]
        label = f"{sid} {mine[0]['name']}"
        for key, name in TABLE[sid]:
            st = analysis.stats([(r.get("metrics") or {}).get(key) for r in mine])
            if st is None:
                lines.append(f"{label:<22} {name:<38} {0:>3} {'-':>10} {'-':>10} {'-':>10}")
            else:
                unit = "" if key.startswith(COUNTS) else " ms"
                lines.append(f"{label:<22} {name:<38} {st['n']:>3} {fmt(st['min'], unit):>10} "
                             f"{fmt(st['median'], unit):>10} {fmt(st['max'], unit):>10}")
            label = ""
        passed = sum(all(c["ok"] for c in r["checks"]) and not r.get("errors") for r in mine)
        lines.append(f"{'':<22} {'checks passed':<38} {len(mine):>3} {f'{passed}/{len(mine)}':>10}")
    return "\n".join(lines)


# -- files ------------------------------------------------------------------------------------
def write_json(path, params, lab, runs, model=None):
    rec = lab.rec
    doc = {
        "params": params,
        "sync": rec.sync_stats,
        "sync_errors": rec.errors,
        "world": lab.world,
        "namespaces": dict(lab.topo.ns) if lab.topo else {},
        "runs": runs,
        "routes": rec.routes,
        "marks": rec.marks,
        "samples": rec.samples,
        "session_opens": rec.opens,
        "time": "time.monotonic() seconds, shared by all processes of the machine",
    }
    ip = getattr(lab, "ip", None)
    if ip is not None:  # scenario 6's own site: its runs' samples, routes and marks are here
        doc["private_ip"] = {
            "world": ip.world,
            "vip": ip.vip,
            "members": {m.name: {"namespace": m.ns, "config": m.config} for m in ip.members.values()},
            "ec2_model": {"config": model.get("config") if model else None, "state": model},
            "sync": ip.rec.sync_stats,
            "sync_errors": ip.rec.errors,
            "routes": ip.rec.routes,
            "marks": ip.rec.marks,
            "samples": ip.rec.samples,
            "session_opens": ip.rec.opens,
        }
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, default=str)


def plot(path, rec, runs, max_panels=12, rec_of=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if len(runs) > max_panels:  # keep the first runs of every scenario
        per = max(1, max_panels // len({r["scenario"] for r in runs}))
        runs = [r for r in runs if r["rep"] <= per][:max_panels]
    fig, axes = plt.subplots(len(runs), 1, figsize=(12, 2.3 * len(runs) + 0.6), squeeze=False)
    route_rec = rec
    for ax, run in zip(axes[:, 0], runs):
        rec = rec_of(run) if rec_of else route_rec
        lo, hi = run["t_view"], run["t_end"]
        for y, kind in ((2, "c"), (1, "s")):  # each attempt where it started (t0)
            pts = [s for s in rec.samples if s["k"] == kind and lo <= s["t0"] <= hi]
            for member in ("A", "B"):
                xs = [rel(run, s["t0"]) for s in pts if s["ok"] and s["m"] == member]
                ax.scatter(xs, [y] * len(xs), s=6, color=COLORS[member], marker="|")
            xs = [rel(run, s["t0"]) for s in pts if not s["ok"]]
            ax.scatter(xs, [y - 0.15] * len(xs), s=10, color="red", marker="x", linewidths=0.8)
        spans = analysis.kernel_spans(rec.routes)
        for member, start, end in spans:
            a, b = max(start, lo), min(end, hi)
            if a < b:
                ax.broken_barh([(rel(run, a), (b - a) * 1000.0)], (-0.2, 0.4), color=COLORS[member])
        for m in rec.marks:
            if not lo <= m["t"] <= hi:
                continue
            style = {"vip_claim": "-", "vip_release": "--"}.get(m["what"], ":")
            color = COLORS.get(m["member"], "black") if m["what"].startswith("vip_") else "black"
            ax.axvline(rel(run, m["t"]), color=color, linestyle=style, linewidth=1.2 if not m.get("setup") else 0.6)
            if m["what"].startswith("vip_") and not m.get("setup"):
                ax.axvspan(rel(run, m["t"]), rel(run, m["t_done"]), color=color, alpha=0.12)
        ax.set_yticks([0, 1, 2], ["router", "session", "new conns"])
        ax.set_ylim(-0.6, 2.6)
        ax.set_xlim(rel(run, lo), rel(run, hi))
        ax.set_title(summary_line(run).split(" -- ")[0], fontsize=8, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("ms from the scenario's event (A's death, the claim or the release)")
    legend = [Line2D([], [], color=COLORS["A"], lw=3, label="A answered / route to A"),
              Line2D([], [], color=COLORS["B"], lw=3, label="B answered / route to B"),
              Line2D([], [], color="red", marker="x", lw=0, label="failed (at the attempt's start)"),
              Line2D([], [], color=COLORS[None], lw=3, label="router: unreachable"),
              Line2D([], [], color="gray", lw=1.2, label="claim (shaded: call in flight)"),
              Line2D([], [], color="gray", lw=1.2, ls="--", label="release"),
              Line2D([], [], color="black", lw=1.2, ls=":", label="A: link down, processes killed")]
    fig.legend(handles=legend, loc="upper center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (2.3 * len(runs) + 0.6)))
    fig.savefig(path, dpi=110)
    plt.close(fig)
