"""The EC2-model phase of `make bench`: every contender over HTTPS through the EC2 model.

The model (tests/support/faultproxy.py, docs/ec2-model.md) stands between the contenders and
moto, as EC2 would: service time per request applied in parallel (`latency_ms`), EC2's default
token buckets per action, eventual consistency of route tables (a write stays invisible to
describes for a window drawn from [min, max] ms with a seeded RNG), and TLS: the proxy
(bench/ec2model.py, the same proxy with read-only views for the bench) terminates HTTPS with a
certificate from a throwaway CA (tests/support/tlscerts.py) that every contender is told to
trust: the library and examples/floor through SSL_CERT_FILE, boto3, the aws CLI and the agent
(which runs the aws CLI) through AWS_CA_BUNDLE.

Per table count: a world (its own VPC in a moto of this phase, run --lean), the contenders set
up once, then per service time `runs` interleaved rounds of runs. Before each run the routes are
put back at the starting holder straight at moto (untimed) and the model is posted afresh: full
buckets, no versions, counters at zero, the consistency RNG seeded with the run's index (so in
run i every contender meets the same sequence of windows). After it:
- claim: call -> return (fresh processes: spawn -> exit; cold also inside the process: load +
  first claim, what NotifyBecomePrimary pays);
- switch (EC2 has it): call -> the model answered the last write that pointed a table at the new
  member (the proxy's log);
- visible: call -> every table's new version visible to DescribeRouteTables through the model
  (the model's own record, bench/ec2model.py: what a reader through the model sees, exactly);
- throttled requests and requests by action (GET /_model);
- moto busy: how long moto was serving at least one request between call and return (the model's
  own reads of a table before and after each write included): moto serves one request at a time,
  so this part of the claim is serial work EC2 would do in parallel;
- rounds: the contender's EC2 requests as intervals [arrival, answer] in the proxy's log; requests
  whose intervals overlap form one round, so the count is the number of sequential rounds on the
  critical path (what decides its time on EC2: each round pays one service time).

The floor under the model is examples/floor (ReplaceRoute on every table at once over warm
connections) as one process per share of the bucket: the first `size` tables (50) at once, then
`refill` (5) more sent so that they reach the bucket just as each second's tokens arrive (the
bench reads the bucket's start from the model: an oracle no real client has). Below 51 tables
that is the plain floor; above, the least any client can take under the bucket.
"""

import json
import os
import subprocess
import time
import urllib.request

import contenders as C
from analysis import busy
from common import HERE, PY, SUPPORT, VIP_CIDR, log, now

FAST = ("floor", "warm", "cold", "warm-role", "cold-role")  # `runs` each; the others `slow_runs`


class Proxy:
    """bench/ec2model.py in front of moto: HTTPS for the contenders, the control API on plain HTTP."""

    def __init__(self, procs, upstream, workdir):
        certs = os.path.join(workdir, "certs")
        subprocess.run([PY, os.path.join(SUPPORT, "tlscerts.py"), certs], check=True)
        self.ca = os.path.join(certs, "ca.pem")
        self.p = procs.start([PY, os.path.join(HERE, "ec2model.py"), "--upstream", upstream,
                              "--tls-cert", os.path.join(certs, "server.pem"),
                              "--tls-key", os.path.join(certs, "server.key")],
                             stdout=subprocess.PIPE, stderr=open(os.path.join(workdir, "ec2model.log"), "w"),
                             text=True)
        ports = {}
        for _ in range(2):
            k, v = self.p.stdout.readline().split()
            ports[k] = int(v)
        self.control = f"http://127.0.0.1:{ports['PORT']}"
        self.tls_url = f"https://127.0.0.1:{ports['TLSPORT']}"
        self.started = self.get("/_bench/clock")["started"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.control + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"{}")

    def get(self, path):
        return self.call("GET", path)

    def model(self, cfg):
        return self.call("POST", "/_model", cfg)

    def off(self):
        self.call("DELETE", "/_model")

    def clear_log(self):
        self.call("DELETE", "/_log")


class ModelContext(C.Context):
    """The contenders' context, with the members reaching EC2 through the proxy over HTTPS."""

    def __init__(self, world, floor, workdir, procs, proxy, bucket, margin_ms):
        super().__init__(world, floor, workdir)
        self.procs, self.proxy, self.bucket = procs, proxy, bucket
        self.margin_s = margin_ms / 1000.0
        self.latency_ms = 0.0  # the service time of the runs under way

    def env(self, member="A", **extra):
        env = super().env(member, **extra)
        env["AWS_ENDPOINT_URL_EC2"] = self.proxy.tls_url
        env["SSL_CERT_FILE"] = self.proxy.ca  # the library and examples/floor (rustls)
        env["AWS_CA_BUNDLE"] = self.proxy.ca  # boto3, the aws CLI (and so the agent)
        return env

    def sts_endpoint(self):
        # Through the proxy too: the model leaves requests signed for STS alone (no bucket, no
        # consistency); bench/ec2model.py gives them the same service time as EC2's.
        return self.proxy.tls_url


class ModelFloor(C.Contender):
    """examples/floor through the model, one process per share of the mutating bucket."""

    key = "floor"

    def setup(self, ctx):
        from services import Floor

        self.ctx = ctx
        tables = ctx.world.tables
        size, refill = ctx.bucket
        shares = [tables[:size]]
        rest = tables[size:]
        while rest:
            if refill < 1:
                raise RuntimeError("more tables than the mutating bucket holds, and no refill")
            shares.append(rest[:refill])
            rest = rest[refill:]
        env = ctx.env("A")
        self.floors = [Floor(ctx.procs, ctx.world, ctx.workdir, endpoint=ctx.proxy.tls_url, tables=s, env=env)
                       for s in shares]

    def plan(self, i):
        return ("B", "A") if i % 2 == 0 else ("A", "B")

    def run(self, to):
        proxy, latency = self.ctx.proxy, self.ctx.latency_ms / 1000.0
        sent = [self.floors[0].send(to)]
        t0 = sent[0]
        if len(self.floors) > 1:
            # Tokens arrive `refill` at a time, k seconds after the bucket's first request; the
            # model takes a token after the service time, so each share leaves that much earlier.
            anchor = None
            while anchor is None and now() < t0 + 10.0:
                anchor = proxy.get("/_bench/bucket?action=ReplaceRoute").get("anchor")
                if anchor is None:
                    time.sleep(0.003)
            if anchor is None:
                raise RuntimeError("the model never made the ReplaceRoute bucket")
            for k, f in enumerate(self.floors[1:], start=1):
                pause = anchor + k - latency + self.ctx.margin_s - now()
                if pause > 0:
                    time.sleep(pause)
                sent.append(f.send(to))
        replies = [f.receive() for f in self.floors]
        t1 = max(s + (r.get("ms") or 0.0) / 1000.0 for s, r in zip(sent, replies))
        error = next((r.get("error") for r in replies if not r.get("ok")), None)
        return C.Run(t0, t1, (t1 - t0) * 1000.0, error is None and all(r.get("ok") for r in replies), error,
                     shares=len(self.floors))

    def teardown(self):
        for f in self.floors:
            f.stop()


CONTENDERS = [ModelFloor, C.IrisvipWarm, C.IrisvipCold, C.IrisvipWarmRole, C.IrisvipColdRole, C.Seed, C.AwsCli,
              C.Agent]


# ---------------------------------------------------------------- per-run analysis


def rounds(entries):
    """Sequential rounds: EC2 requests as [arrival, answer] intervals; overlapping ones form one."""
    spans = sorted((e["t"], e["t"] + (e.get("ms") or 0.0) / 1000.0) for e in entries if e.get("action"))
    count, end = 0, None
    for a, b in spans:
        if end is None or a > end:
            count += 1
            end = b
        else:
            end = max(end, b)
    return count


def analyse(run, entries, started, visible, eni, tables):
    """The run's switch, visibility, rounds and requests from the proxy's log and the model."""
    t0 = run["t0"]
    done = {}
    for e in entries:
        p = e.get("params") or {}
        if (e.get("action") in ("ReplaceRoute", "CreateRoute") and e.get("status") == 200
                and p.get("NetworkInterfaceId") == eni and p.get("DestinationCidrBlock") == VIP_CIDR):
            end = started + e["t"] + (e.get("ms") or 0.0) / 1000.0
            t = p.get("RouteTableId")
            done[t] = min(done.get(t, end), end)
    seen = {}
    for v in visible:
        if v["answered"] >= t0 and v["routes"].get(VIP_CIDR) == eni:
            seen[v["table"]] = min(seen.get(v["table"], v["visible_from"]), v["visible_from"])
    out = {"rounds": rounds(entries),
           # without the answers EC2 throttled: the rounds that did work (the rest waited for tokens)
           "rounds_served": rounds([e for e in entries if e.get("fault") != "model:throttle"]),
           "ec2_requests": sum(1 for e in entries if e.get("action")),
           "switch_commit_ms": None, "visible_ms": None}
    if tables and all(t in done for t in tables):
        out["switch_commit_ms"] = (max(done[t] for t in tables) - t0) * 1000.0
    if tables and all(t in seen for t in tables):
        out["visible_ms"] = (max(seen[t] for t in tables) - t0) * 1000.0
    return out


# ---------------------------------------------------------------- the phase


def model_config(args, latency_ms, seed, throttle=None):
    lo, hi = args.window
    cfg = {"seed": seed, "latency_ms": latency_ms, "consistency": {"min_ms": lo, "max_ms": hi}}
    if throttle is not None:
        cfg["throttle"] = throttle
    return cfg


# The smoke's extra cell: more tables than a (shrunken) mutating bucket holds, so that `make
# bench-smoke` also runs the paths only 64 tables take at EC2's defaults (the floor's shares at
# the refills, irisvip's retries on RequestLimitExceeded) in a few seconds instead of minutes.
SMOKE_THROTTLED = {"tables": 3, "contenders": ("floor", "warm", "cold"),
                   "throttle": {"categories": {"mutating": {"size": 2, "refill": 1}}}}


def run_phase(args, procs, workdir):
    from services import Moto

    results = {"runs": [], "worlds": [], "unavailable": {}, "latencies": args.latencies,
               "tables": args.model_tables, "window_ms": list(args.window),
               "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    moto = Moto(procs, workdir, lean=True)
    proxy = Proxy(procs, moto.endpoint, workdir)
    results["model_config"] = effective_config(proxy, args)
    wanted = args.model_contenders.split(",")
    for index, n in enumerate(args.model_tables):
        run_world(args, procs, moto, proxy, workdir, results, n, 60 + index, wanted)
    if args.smoke:
        # Not in the summary (its bucket is not EC2's): only checked to have worked.
        extra = {"runs": [], "worlds": [], "unavailable": {}}
        run_world(args, procs, moto, proxy, workdir, extra, SMOKE_THROTTLED["tables"], 59,
                  [k for k in wanted if k in SMOKE_THROTTLED["contenders"]], throttle=SMOKE_THROTTLED["throttle"])
        results["smoke_throttled"] = extra
    return results


def effective_config(proxy, args, throttle=None):
    """The model's configuration with every default filled in, as the proxy reports it."""
    cfg = proxy.model(model_config(args, 0, args.model_seed, throttle))["config"]
    proxy.off()
    return cfg


def run_world(args, procs, moto, proxy, workdir, results, n, index, wanted, throttle=None):
    """One table count: a world, its contenders set up once, then every service time."""
    from services import Floor, World

    label = f"{n} route table(s)" + (f", throttle {json.dumps(throttle)}" if throttle else "")
    log(f"== EC2 model: {label}")
    mutating = effective_config(proxy, args, throttle)["throttle"]["categories"]["mutating"]
    bucket = (int(mutating["size"]), int(mutating["refill"]))
    world = World(procs, moto, n, index, workdir)
    reset_floor = Floor(procs, world, workdir)  # straight at moto: puts the routes back, untimed
    ctx = ModelContext(world, reset_floor, workdir, procs, proxy, bucket, args.floor_margin_ms)
    live = set_up(args, ctx, n, wanted, results)
    for latency in args.latencies:
        ctx.latency_ms = latency
        run_cell(args, ctx, moto, live, latency, throttle, results)
    for c in live:
        try:
            c.teardown()
        except Exception as e:  # noqa: BLE001
            log(f"   {c.key}: teardown: {e}")
    reset_floor.stop()
    world.stop()
    results["worlds"].append({"tables": n, "vpc": world.w["vpc"], "route_tables": world.tables})


def set_up(args, ctx, n, wanted, results):
    """The contenders that can run with n tables, set up (the model is off: warm-ups are plain
    forwarding); the others recorded in results["unavailable"]."""
    live = []
    for cls in CONTENDERS:
        c = cls()
        if c.key not in wanted:
            continue
        if c.key == "agent" and n > args.agent_max_tables:
            results["unavailable"].setdefault(
                f"agent@{n}", f"not run above {args.agent_max_tables} tables (--agent-max-tables): "
                              "it sleeps 1 s per table three times over")
            continue
        ok, why = c.available()
        if ok:
            try:
                c.setup(ctx)
                live.append(c)
                continue
            except Exception as e:  # noqa: BLE001 - reported, the others go on
                why = f"setup failed: {e}"
        log(f"   {c.key}: cannot run: {why}")
        results["unavailable"].setdefault(c.key, why)
    return live


def runs_of(args, c):
    return args.model_runs if c.key in FAST else args.model_slow_runs


def run_cell(args, ctx, moto, live, latency, throttle, results):
    """One service time: the contenders' runs interleaved, run by run."""
    seen = ctx.world.routes()
    holder = seen[0] if len(set(seen)) == 1 else None
    for i in range(max([runs_of(args, c) for c in live] or [0])):
        for c in live:
            if i < runs_of(args, c):
                row = run_one(args, ctx, moto, c, i, holder, latency, throttle)
                holder = row.pop("holder_after")
                results["runs"].append(row)


def run_one(args, ctx, moto, c, i, holder, latency, throttle):
    """One timed run from a reset world and a fresh model; returns its row."""
    from services import reset_to

    proxy, world, n = ctx.proxy, ctx.world, len(ctx.world.tables)
    frm, to = c.plan(i)
    if holder != frm:
        reset_to(world, ctx.floor, frm)
    proxy.model(model_config(args, latency, args.model_seed + i, throttle))
    proxy.clear_log()
    time.sleep(args.settle_ms / 1000.0)
    try:
        r = c.run(to)
    except Exception as e:  # noqa: BLE001
        r = _failed(f"{type(e).__name__}: {e}")
    served = moto.requests(r.t0)  # moto's own log: its serial work in this run
    stats = proxy.get("/_model")
    entries = proxy.get("/_log")
    visible = proxy.get("/_bench/visible")
    proxy.off()
    seen = world.routes()
    row = {"contender": c.key, "tables": n, "latency_ms": latency, "i": i, "from": frm, "to": to,
           "t0": r.t0, "t1": r.t1, "claim_ms": r.claim_ms, "ok": bool(r.ok),
           "error": r.error if not r.ok else None, "routes_after": seen,
           "verified": seen == to * n, **_extra(r),
           "requests": stats.get("requests", {}), "throttled": sum(stats.get("throttled", {}).values()),
           "throttled_by_action": stats.get("throttled", {}),
           "max_in_flight": stats.get("max_in_flight"), "stale_answers": sum(stats.get("stale", {}).values())}
    row.update(analyse(row, entries, proxy.started, visible, world.eni[to], world.tables))
    row["moto_busy_ms"] = busy([m for m in served if m["t1"] <= max(r.t1, r.t0)]) * 1000.0
    log_run(row, c.key, frm, to)
    row["holder_after"] = seen[0] if len(set(seen)) == 1 else None
    return row


def log_run(row, key, frm, to):
    mark = "ok" if row["ok"] and row["verified"] else "FAILED"
    ms = f"{row['claim_ms']:9.1f} ms" if row["claim_ms"] is not None else "        - ms"
    vis = f"{row['visible_ms']:7.0f}" if row["visible_ms"] is not None else "      -"
    log(f"   {row['latency_ms']:>3} ms {key:<9} #{row['i'] + 1:<2} {frm}->{to} {ms}  visible {vis} ms  "
        f"rounds {row['rounds']:<3} throttled {row['throttled']:<3} {mark}"
        + (f": {str(row['error'])[:300]}" if mark != "ok" else ""))


def _failed(error):
    t = now()
    return C.Run(t, t, None, False, error)


def _extra(r):
    """What a contender added to its Run (cold: load_ms, call_ms, ...), JSON-safe."""
    out = {}
    for k, v in r.extra.items():
        if isinstance(v, (int, float, str, bool, list, dict)) or v is None:
            out[k] = v
    if r.extra.get("load_ms") is not None and r.extra.get("call_ms") is not None:
        out["in_process_ms"] = r.extra["load_ms"] + r.extra["call_ms"]
    return out
