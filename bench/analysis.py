"""From timestamps to numbers: what each run's switch looked like, then min/median/max.

Per run (window = [t0, end], end = when the run returned plus the settle time):
- switch_poll_ms: t0 -> the first poll answered after t0 in which every table points at the new
  holder (the reader's view; its resolution is one poll);
- noroute_polls / split_polls: polls overlapping the window in which some table had no VIP route /
  in which the tables disagreed (some old holder, some new);
- switch_commit_ms: t0 -> the moment moto had answered the last mutation that pointed a table
  at the new holder (the commit-side view: from then on any reader sees it);
- noroute_commit_ms: the longest time one table spent without the route (DeleteRoute answered ->
  CreateRoute answered), from the same log;
- requests / server_ms / actions: the EC2 requests moto answered within the window and how long
  it was busy answering them (in the quiet phase these are the contender's own requests only).
"""

import collections

import bisect
import statistics


def poll_view(run, records, recv_times, tables_n):
    """Switch and gap counts from the poller's records (sorted by t_recv)."""
    want = run["to"] * tables_n
    start = bisect.bisect_left(recv_times, run["t0"])
    switch = None
    noroute = split = polls = 0
    for t_send, t_recv, states in records[start:]:
        if t_send > run["end"]:
            break
        polls += 1
        if switch is None and states == want:
            switch = (t_recv - run["t0"]) * 1000.0
        if "-" in states:
            noroute += 1
        elif len(set(states)) > 1:
            split += 1
    return {"switch_poll_ms": switch, "noroute_polls": noroute, "split_polls": split, "polls": polls}


def commit_view(run, requests, eni, tables):
    """Switch and no-route time, and the requests made, from moto's request log."""
    window = [m for m in requests if run["t0"] <= m["t0"] and m["t1"] <= run["end"]]
    mine = [m for m in window if m["status"] == 200 and m["action"] in ("ReplaceRoute", "CreateRoute", "DeleteRoute")]
    done = {}
    gaps = []
    deleted = {}
    for m in sorted(mine, key=lambda m: m["t1"]):
        t = m["table"]
        if m["action"] == "DeleteRoute":
            deleted[t] = m["t1"]
        elif m["action"] in ("ReplaceRoute", "CreateRoute"):
            if t in deleted:
                gaps.append(m["t1"] - deleted.pop(t))
            if m["eni"] == eni and t not in done:
                done[t] = m["t1"]
    for t, at in deleted.items():  # deleted and never re-created within the window
        gaps.append(run["end"] - at)
    switch = None
    if tables and all(t in done for t in tables):
        switch = (max(done[t] for t in tables) - run["t0"]) * 1000.0
    return {"switch_commit_ms": switch, "noroute_commit_ms": max(gaps) * 1000.0 if gaps else 0.0,
            "requests": len(window), "server_ms": busy(window) * 1000.0,
            "actions": dict(collections.Counter(m["action"] for m in window))}


def busy(entries):
    """How long moto was answering at least one of these requests (union of [t0, t1])."""
    total, end = 0.0, None
    for m in sorted(entries, key=lambda m: m["t0"]):
        if end is None or m["t0"] > end:
            total += m["t1"] - m["t0"]
            end = m["t1"]
        elif m["t1"] > end:
            total += m["t1"] - end
            end = m["t1"]
    return total


def poll_periods(records):
    """Median time one poll took (send -> answer), in ms."""
    if not records:
        return None
    return statistics.median((b - a) * 1000.0 for a, b, _ in records)


def summary(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    return {"min": vals[0], "median": statistics.median(vals), "max": vals[-1], "n": len(vals)}


def ratio(a, b):
    if not a or not b or not b.get("median"):
        return None
    return a["median"] / b["median"]
