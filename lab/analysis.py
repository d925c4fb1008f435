"""Judging what the client saw against who held the route: pure functions over recorded data.

Two timelines of the VIP route come from the sync loop's change events:
- moto's (the control plane): a change to X happened somewhere in (t_after, t_seen], so X held
  the route at least over [t_seen, next t_after] and at most over (t_after, next t_seen];
- the router kernel's (the data plane): X from t_applied to the next change's t_applied.
A reply from X is legitimate when X held the route in moto when the request left, give or take
the sync loop's lag (its poll interval, its poll, and its `ip route` call), and when the
router's kernel sent packets to X at that moment.
"""

import math
import statistics


def moto_spans(routes):
    """[(member, earliest start, latest end)] of who held the route in moto."""
    spans = []
    for i, r in enumerate(routes):
        end = routes[i + 1]["t_seen"] if i + 1 < len(routes) else math.inf
        spans.append((r["member"], r["t_after"], end))
    return spans


def kernel_spans(routes, loose=False):
    """[(member, start, end)] of where the router's kernel sent VIP packets (None: unreachable).
    A switch took effect somewhere between the sync loop's decision (t_seen) and the return of
    its `ip route` call (t_applied): loose spans start at the former, others at the latter."""
    start = "t_seen" if loose else "t_applied"
    return [(r["member"], r[start], routes[i + 1]["t_applied"] if i + 1 < len(routes) else math.inf)
            for i, r in enumerate(routes)]


def held(spans, member, lo, hi):
    """Whether member held the route at some moment of [lo, hi] according to spans."""
    return any(m == member and start <= hi and end >= lo for m, start, end in spans)


def stray_replies(samples, routes, allowance_s, tol_s=0.002):
    """Replies from a member that did not hold the route when the request left.

    Returns [(sample, reason)]. A request's t0 is when its SYN (probe) or line (session) left."""
    ms, ks = moto_spans(routes), kernel_spans(routes, loose=True)
    bad = []
    for s in samples:
        if not s["ok"]:
            continue
        if not held(ms, s["m"], s["t0"] - allowance_s, s["t0"] + tol_s):
            bad.append((s, "not the holder in EC2"))
        elif not held(ks, s["m"], s["t0"] - tol_s, s["t0"] + tol_s):
            bad.append((s, "not where the router sent packets"))
    return bad


def apply_lag_s(routes, slack_s=0.005):
    """How long the router's kernel may trail the sync loop's view of moto: the longest
    `ip route replace` seen, plus slack. The poll interval itself is already inside the moto
    spans (a holder's span ends only when a poll has seen the next one)."""
    return max((r["t_applied"] - r["t_seen"] for r in routes), default=0.0) + slack_s


def last_reply(samples, member, before, kind=None):
    got = [s for s in samples if s["ok"] and s["m"] == member and s["t1"] <= before and (kind is None or s["k"] == kind)]
    return max(got, key=lambda s: s["t1"]) if got else None


def first_reply(samples, member, after, kind=None):
    got = [s for s in samples if s["ok"] and s["m"] == member and s["t1"] >= after and (kind is None or s["k"] == kind)]
    return min(got, key=lambda s: s["t1"]) if got else None


def in_window(samples, lo, hi):
    return [s for s in samples if lo <= s["t1"] <= hi]


def stats(values):
    """min / median / max of the values that exist."""
    vs = [v for v in values if v is not None]
    if not vs:
        return None
    return {"n": len(vs), "min": min(vs), "median": statistics.median(vs), "max": max(vs)}
