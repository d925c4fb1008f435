"""What one lab run saw, in one place: client outcomes, router route changes, the lab's own
actions. Reader threads append (list.append is atomic in CPython); the scenario thread reads
and waits. Every time is time.monotonic(), which all processes of the machine share.
"""

import json
import time


class Recorder:
    def __init__(self):
        self.samples = []  # client outcomes: {"k": "c"|"s", "t0", "t1", "ok", "m" | "err", ...}
        self.opens = []  # session (re)opened: {"t", "sid"}
        self.routes = []  # router changes: {"t_after", "t_seen", "t_applied", "member", ...}
        self.marks = []  # lab actions: {"t", "what", "member", ...}
        self.sync_stats = None
        self.errors = []  # data-plane poll errors
        self.client_ready = None

    # -- fed by the reader threads --------------------------------------------------------
    def on_client(self, line, _t):
        ev = self._parse(line)
        k = ev.get("k")
        if k in ("c", "s"):
            self.samples.append(ev)
        elif k == "open":
            self.opens.append(ev)
        elif k == "ready":
            self.client_ready = ev["t"]

    def on_sync(self, line, _t):
        ev = self._parse(line)
        if ev.get("ev") == "route":
            self.routes.append(ev)
        elif ev.get("ev") == "stats":
            self.sync_stats = ev
        elif ev.get("ev") in ("error", "garbled"):
            self.errors.append(ev)

    def _parse(self, line):
        """A line that is not JSON (a traceback, say) is kept as an error, never kills the reader."""
        try:
            return json.loads(line)
        except ValueError:
            self.errors.append({"ev": "garbled", "line": line[:300]})
            return {}

    # -- fed by the scenarios -------------------------------------------------------------
    def mark(self, what, member=None, t=None, **extra):
        m = {"t": time.monotonic() if t is None else t, "what": what, "member": member, **extra}
        self.marks.append(m)
        return m

    # -- queries --------------------------------------------------------------------------
    def replies(self, start, end=None, member=None, kind=None):
        """Successful client outcomes answered within [start, end], oldest first."""
        out = []
        for s in reversed(self.samples):  # recent ones are at the end
            if s["t1"] < start - 1.0:  # samples arrive roughly in t1 order; 1 s of slack
                break
            if s["ok"] and s["t1"] >= start and (end is None or s["t1"] <= end) \
                    and (member is None or s["m"] == member) and (kind is None or s["k"] == kind):
                out.append(s)
        out.reverse()
        return out

    def wait_reply(self, member, after, timeout, kind=None):
        """The first reply from member answered after `after` (waiting up to timeout), or None."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.replies(after, member=member, kind=kind)
            if got:
                return min(got, key=lambda s: s["t1"])
            if time.monotonic() > deadline:
                return None
            time.sleep(0.002)

    def wait_route(self, member, after, timeout):
        """The router's first change to `member` applied after `after`, or None."""
        deadline = time.monotonic() + timeout
        while True:
            for r in self.routes:
                if r["t_applied"] >= after and r["member"] == member:
                    return r
            if time.monotonic() > deadline:
                return None
            time.sleep(0.002)

    def kernel_holder(self, t):
        """Who the router's kernel route pointed at, at time t (None: unreachable)."""
        holder = None
        for r in self.routes:
            if r["t_applied"] > t:
                break
            holder = r["member"]
        return holder
