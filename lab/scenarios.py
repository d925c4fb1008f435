"""The six scenarios. Each one first puts the lab in the state it starts from (marked "setup",
so one scenario can run alone or after any other), then acts exactly as IRIS would (vip_claim
from NotifyBecomePrimary, vip_release from ^%ZSTOP with releaseOnStop), and returns a run: its
time window, the metrics it measured, and the checks it made.

All times are time.monotonic() seconds; metrics are milliseconds.
"""

import time

import analysis


class ScenarioFailed(Exception):
    """The lab could not reach a scenario's starting state; later scenarios would be meaningless."""


NAMES = {
    1: "cold start",
    2: "unplanned failover",
    3: "planned failover",
    4: "late release race",
    5: "fail-back to A",
    6: "private-ip failover",
}
# Scenarios that run in the private-ip site (services.IpSite): its own members, data plane, client.
IP_SCENARIOS = {6}


def ms(a, b):
    """b - a in milliseconds, or None when either end is missing."""
    return None if a is None or b is None else round((b - a) * 1000.0, 2)


class Runner:
    def __init__(self, lab, observe_s=0.3, detect_ms=0.0, reach_timeout_s=10.0, site=None):
        self.lab = lab
        self.site = site or lab  # what holds the members and the recorder: the lab, or its IpSite
        self.rec = self.site.rec
        self.a, self.b = self.site.members["a"], self.site.members["b"]
        self.observe_s = observe_s  # steady traffic watched before and after each event
        self.detect_ms = detect_ms  # unplanned: delay between A's death and B's claim
        self.reach_timeout_s = reach_timeout_s
        self.session_timeout_s = lab.client_opts.get("session_timeout_ms", 300.0) / 1000.0
        self.ip_runner = None

    # -- actions, each marked on the timeline ---------------------------------------------
    def _call(self, mem, entry, setup, pending=None):
        c = mem.finish_call(pending) if pending else mem.call(entry)
        r = c["result"]
        actions, extra = [t.get("action") for t in r.get("route_tables", [])], {}
        if "address" in r:  # mode=private-ip: one address instead of route tables
            addr = r["address"] or {}
            actions = [addr.get("action")]
            extra = {"address": {k: addr.get(k) for k in ("ip", "target", "self", "action", "confirmed")}}
        self.rec.mark(entry, mem.name, t=c["t_sent"], t_done=c["t_done"], host_ms=c["host_ms"],
                      lib_ms=r.get("elapsed_ms"), ok=r.get("ok"), holder=r.get("holder"), actions=actions,
                      error=r.get("error"), cold=c["cold"], threads=c["threads"], setup=setup, **extra)
        return c

    def claim(self, mem, setup=False, pending=None):
        return self._call(mem, "vip_claim", setup, pending)

    def release(self, mem, setup=False):
        return self._call(mem, "vip_release", setup)

    def wait_kernel(self, member, timeout=2.0):
        """Until the router's kernel route points at member (None: unreachable)."""
        deadline = time.monotonic() + timeout
        while self.rec.kernel_holder(time.monotonic()) != member:
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"the router did not switch to {member or 'unreachable'}")
            time.sleep(0.002)

    def pause(self, seconds=None):
        time.sleep(self.observe_s if seconds is None else seconds)

    # -- starting states ------------------------------------------------------------------
    def ensure_alive(self, *members):
        for mem in members:
            if not mem.alive:
                self.lab.revive(mem, setup=True)

    def make_holder(self, mem):
        """mem holds the route and both the probes and the session reach it."""
        self.ensure_alive(self.a, self.b)
        c = self.claim(mem, setup=True)
        if not c["result"].get("ok"):
            raise ScenarioFailed(f"setup: {mem.name}'s claim failed: {c['result'].get('error')}")
        self.wait_reached(mem, c["t_sent"], "setup")
        self.pause()

    def wait_reached(self, mem, after, what):
        """Both kinds of traffic answered by mem after `after`; the session may first have to
        notice that its connection went dead, which takes up to its timeout."""
        if self.rec.wait_reply(mem.name, after, self.reach_timeout_s, kind="c") is None:
            raise ScenarioFailed(f"{what}: no probe reached {mem.name} within {self.reach_timeout_s:.0f} s")
        if self.rec.wait_reply(mem.name, after, self.session_timeout_s + 3.0, kind="s") is None:
            raise ScenarioFailed(f"{what}: the session did not reach {mem.name}")

    # -- common measurements --------------------------------------------------------------
    def handover(self, old, new, t_from, t_end):
        """Client-observed numbers of one handover from old (None: nobody) to new."""
        s = self.rec.samples
        first = analysis.first_reply(s, new.name, t_from)
        first_c = analysis.first_reply(s, new.name, t_from, kind="c")
        first_s = analysis.first_reply(s, new.name, t_from, kind="s")
        out = {"first_reply_t": first and first["t1"], "first_reply_kind": first and first["k"]}
        if old is not None:
            last = analysis.last_reply(s, old.name, t_end)
            last_c = analysis.last_reply(s, old.name, t_end, kind="c")
            last_s = analysis.last_reply(s, old.name, t_end, kind="s")
            out.update({
                "last_old_t": last and last["t1"],
                "downtime_ms": ms(last and last["t1"], first and first["t1"]),
                "probe_gap_ms": ms(last_c and last_c["t1"], first_c and first_c["t1"]),
                "session_gap_ms": ms(last_s and last_s["t1"], first_s and first_s["t1"]),
            })
        return out

    def claim_numbers(self, c, new):
        """What one claim cost and how soon its effect showed at the router and the client."""
        route = self.rec.wait_route(new.name, c["t_sent"], 2.0)
        first = analysis.first_reply(self.rec.samples, new.name, c["t_sent"])
        first_s = analysis.first_reply(self.rec.samples, new.name, c["t_sent"], kind="s")
        return {
            "claim_call_ms": round(c["host_ms"], 2) if c["host_ms"] is not None else None,
            "claim_lib_ms": c["result"].get("elapsed_ms"),
            "claim_cold": c["cold"],
            "claim_to_router_ms": ms(c["t_sent"], route and route["t_applied"]),
            "claim_to_first_reply_ms": ms(c["t_sent"], first and first["t1"]),
            "claim_to_session_ms": ms(c["t_sent"], first_s and first_s["t1"]),
        }

    def strays(self, lo, hi):
        window = [x for x in self.rec.samples if lo <= x["t0"] <= hi]
        return analysis.stray_replies(window, self.rec.routes, analysis.apply_lag_s(self.rec.routes))

    # -- the scenarios --------------------------------------------------------------------
    def run(self, sid, rep):
        if self.site is self.lab:  # the route site's runner: hands the private-ip site's scenarios on
            if self.lab.ip is not None:
                self.lab.focus(sid in IP_SCENARIOS)
            if sid in IP_SCENARIOS:
                if self.ip_runner is None:
                    self.ip_runner = Runner(self.lab, self.observe_s, self.detect_ms, self.reach_timeout_s,
                                            site=self.lab.ip)
                return self.ip_runner.run(sid, rep)
        t_start = time.monotonic()
        run = {"scenario": sid, "name": NAMES[sid], "rep": rep, "t_start": t_start, "checks": []}
        if self.site is not self.lab:
            run["site"] = "private-ip"
        getattr(self, f"s{sid}")(run)
        run["t_end"] = time.monotonic()
        # What a timeline or plot shows: from a little before the first non-setup action.
        acts = [m["t"] for m in self.rec.marks if m["t"] >= t_start and not m.get("setup")]
        run["t_view"] = min(acts + [run["t_key"]]) - min(self.observe_s, 0.35)
        bad = self.strays(run["t_start"], run["t_end"])
        check(run, "every reply came from the route's holder", not bad,
              "; ".join(f"{s['k']} from {s['m']} at {ms(run['t_key'], s['t0'])} ms: {why}" for s, why in bad[:5]))
        return run

    def s1(self, run):
        """Cold start: no route anywhere; A, in a freshly started IRIS process, claims."""
        self.ensure_alive(self.a, self.b)
        for mem in (self.a, self.b):  # each deletes only a route that points at itself
            self.release(mem, setup=True)
        self.wait_kernel(None)
        self.lab.restart_host(self.a)
        self.rec.mark("new IRIS process", "A", setup=True)
        self.pause()
        c = self.claim(self.a)
        run.update(t_key=c["t_sent"], old=None, new="A", claim_ok=c["result"].get("ok"))
        reached = self.try_reach(run, self.a, c["t_sent"])
        self.pause()
        run["metrics"] = {**self.claim_numbers(c, self.a), **self.handover(None, self.a, c["t_sent"], time.monotonic())}
        check(run, "claim ok, holder self", c["result"].get("ok") and c["result"].get("holder") == "self",
              str(c["result"].get("error") or c["result"].get("holder")))
        check(run, "the client reached A", reached, "")

    def s2(self, run):
        """Unplanned failover: A (holding the route) dies; B claims."""
        self.unplanned(run)

    def unplanned(self, run):
        """A (holding the VIP) dies: link down, then service and IRIS process killed; B claims."""
        self.make_holder(self.a)
        self.lab.link_down(self.a)
        t_kill = self.rec.marks[-1]["t"]
        if self.detect_ms:
            self.lab.kill_processes(self.a)
            time.sleep(self.detect_ms / 1000.0)
            c = self.claim(self.b)
        else:
            # B is told at once; A's processes are killed while B's claim is in flight, so the
            # lab's own bookkeeping does not delay the claim.
            pending = self.b.start_call("vip_claim")
            self.lab.kill_processes(self.a)
            c = self.claim(self.b, pending=pending)
        run.update(t_key=t_kill, old="A", new="B")
        reached = self.try_reach(run, self.b, c["t_sent"])
        self.pause()
        m = self.claim_numbers(c, self.b)
        m.update(self.handover(self.a, self.b, t_kill, time.monotonic()))
        m["death_to_first_reply_ms"] = ms(t_kill, m["first_reply_t"])
        run["metrics"] = m
        check(run, "claim ok, holder self", c["result"].get("ok") and c["result"].get("holder") == "self",
              str(c["result"].get("error") or c["result"].get("holder")))
        check(run, "the client reached B after A died", reached, "")
        return c

    def s6(self, run):
        """Private-ip failover inside one subnet: the VIP is a secondary private IP of the subnet
        both members are in (mode=private-ip), held by A's ENI. A dies as in scenario 2; B's claim
        moves the address to its ENI (AssignPrivateIpAddresses, AllowReassignment) and the VPC
        delivers it there, as EC2 (the model) says who holds it."""
        c = self.unplanned(run)
        addr = c["result"].get("address") or {}
        b_eni = self.b.ident["eni"]
        check(run, "B's claim assigned the address to B's ENI", addr.get("action") == "assigned"
              and addr.get("target") == b_eni and addr.get("self") is True, f"address {addr}")
        # What the data plane last read through the EC2 model: B's ENI alone holds it.
        last = self.rec.routes[-1] if self.rec.routes else {}
        check(run, "EC2 shows the address on B's ENI only", last.get("target") == b_eni and last.get("state") == "active",
              f"last read: target {last.get('target')}, state {last.get('state')}")
        switch = self.rec.wait_route("B", c["t_sent"], 0)
        late = [s for s in self.rec.samples if switch and s["ok"] and s["m"] == "A" and s["t0"] >= switch["t_seen"]]
        run["metrics"]["replies_from_a_after_switch"] = len(late)
        check(run, "no reply from A once the address moved", switch is not None and not late,
              f"{len(late)} replies from A" if switch else "the data plane never switched to B")

    def s3(self, run):
        """Planned failover with releaseOnStop: A releases, then B claims."""
        self.make_holder(self.a)
        r = self.release(self.a)
        c = self.claim(self.b)
        run.update(t_key=r["t_sent"], old="A", new="B")
        reached = self.try_reach(run, self.b, c["t_sent"])
        self.pause()
        m = self.claim_numbers(c, self.b)
        m.update(self.handover(self.a, self.b, r["t_sent"], time.monotonic()))
        m["release_call_ms"] = round(r["host_ms"], 2)
        # How long the router had no route at all: release's delete until B's route arrived.
        gone = self.rec.wait_route(None, r["t_sent"], 0)
        back = self.rec.wait_route("B", r["t_sent"], 0)
        m["router_unreachable_ms"] = ms(gone["t_applied"], back["t_applied"]) if gone and back else 0.0
        run["metrics"] = m
        check(run, "A's release deleted its routes", r["result"].get("ok") and "deleted" in
              [t.get("action") for t in r["result"].get("route_tables", [])], str(r["result"].get("route_tables")))
        check(run, "the client reached B", reached, "")

    def s4(self, run):
        """Late release race: B has claimed while A still lives; then A's delayed release runs.
        The release must see that the route is B's and leave it: compare, then delete only ours."""
        self.make_holder(self.a)
        c = self.claim(self.b)
        reached = self.try_reach(run, self.b, c["t_sent"])
        self.pause()
        r = self.release(self.a)
        run.update(t_key=r["t_sent"], old="A", new="B", claim_t=c["t_sent"])
        self.pause(max(self.observe_s, 0.5))
        t_end = time.monotonic()
        after = analysis.in_window(self.rec.samples, r["t_sent"], t_end)
        failures = [s for s in after if not s["ok"]]
        others = [s for s in after if s["ok"] and s["m"] != "B"]
        moved = [x for x in self.rec.routes if x["t_applied"] >= r["t_sent"]]
        m = self.claim_numbers(c, self.b)
        m.update(self.handover(self.a, self.b, c["t_sent"], r["t_sent"]))
        m.update({"release_call_ms": round(r["host_ms"], 2), "after_release_replies": len(after),
                  "after_release_failures": len(failures), "after_release_route_changes": len(moved)})
        run["metrics"] = m
        acts = [t.get("action") for t in r["result"].get("route_tables", [])]
        check(run, "the client reached B", reached, "")
        check(run, "A's late release deleted nothing", r["result"].get("ok") and "deleted" not in acts
              and r["result"].get("holder") == "other", f"actions {acts}, holder {r['result'].get('holder')}")
        check(run, "B kept serving through A's late release", bool(after) and not failures and not others and not moved,
              f"{len(failures)} failures, {len(others)} replies from others, {len(moved)} route changes "
              f"among {len(after)} outcomes")

    def s5(self, run):
        """Fail-back: B holds; A is back (a fresh IRIS process) and claims — a ReplaceRoute, no
        release first; then B, demoted, runs its (late) release, which must change nothing."""
        self.make_holder(self.b)
        if self.a.host_calls:
            self.lab.restart_host(self.a)
            self.rec.mark("new IRIS process", "A", setup=True)
        self.pause()
        c = self.claim(self.a)
        run.update(t_key=c["t_sent"], old="B", new="A")
        reached = self.try_reach(run, self.a, c["t_sent"])
        self.pause()
        r = self.release(self.b)
        self.pause()
        m = self.claim_numbers(c, self.a)
        m.update(self.handover(self.b, self.a, c["t_sent"], r["t_sent"]))
        run["metrics"] = m
        acts = [t.get("action") for t in r["result"].get("route_tables", [])]
        after = analysis.in_window(self.rec.samples, r["t_sent"], time.monotonic())
        check(run, "the client reached A", reached, "")
        check(run, "B's release deleted nothing", r["result"].get("ok") and "deleted" not in acts, f"actions {acts}")
        check(run, "A kept serving after B's release", bool(after) and all(s["ok"] and s["m"] == "A" for s in after),
              f"{sum(not s['ok'] for s in after)} failures among {len(after)}")

    def try_reach(self, run, mem, after):
        try:
            self.wait_reached(mem, after, run["name"])
            return True
        except ScenarioFailed as e:
            run.setdefault("errors", []).append(str(e))
            return False


def check(run, name, ok, detail):
    run["checks"].append({"name": name, "ok": bool(ok), "detail": "" if ok else detail})
