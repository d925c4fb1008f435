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

The address modes (MODES, run_modes): the claim of a secondary private IP (mode=private-ip) and
of an Elastic IP (mode=eip), warm and cold, beside the floor and the route claim with 1 table, in a
world of their own (one subnet, a secondary address, an Elastic IP). Their switch is the model
answering the AssignPrivateIpAddresses / AssociateAddress that names the claiming ENI, their
visibility the model's record of the ENIs' / the Elastic IP's versions; each run's rounds are also
kept as the proxy logged them (`round_actions`). `--model-modes-only` runs this cell alone.

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

FAST = ("floor", "warm", "cold", "warm-role", "cold-role", "warm-private-ip", "cold-private-ip", "warm-eip",
        "cold-eip")  # `runs` each; the others `slow_runs`


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
              C.Agent, C.IrisvipWarmPrivateIp, C.IrisvipColdPrivateIp, C.IrisvipWarmEip, C.IrisvipColdEip]

# The address modes' cell (issue 15, item 3): the claim of a secondary private IP (`mode=private-ip`)
# and of an Elastic IP (`mode=eip`) by irisvip warm and cold, next to the route claim with 1 table
# (and the floor) in one world of their own: both members in one subnet (what private-ip needs),
# A's ENI holding the secondary address at the start, an Elastic IP allocated. Every run moves the
# address from the other member to the claiming one (the reset puts it there straight at moto).
MODES = {"tables": 1, "cidr_index": 58, "flags": ("--same-subnet", "--secondary-ip", "--eip"),
         "contenders": ("floor", "warm", "cold", "warm-private-ip", "cold-private-ip", "warm-eip", "cold-eip"),
         # the warm hosts' warm-up claims run under EC2's address semantics only (moto alone leaves a
         # reassigned address on both ENIs, and its filter never finds a secondary address)
         "warmup_model": {"throttle": False, "consistency": False}}
MODE_KEYS = tuple(k for k in MODES["contenders"] if k not in ("floor", "warm", "cold"))


# ---------------------------------------------------------------- per-run analysis


def rounds(entries):
    """Sequential rounds: EC2 requests as [arrival, answer] intervals; overlapping ones form one."""
    return len(round_groups(entries))


def round_groups(entries):
    """The rounds themselves: per round, the actions of its requests (in arrival order)."""
    spans = sorted((e["t"], e["t"] + (e.get("ms") or 0.0) / 1000.0, e["action"]) for e in entries if e.get("action"))
    groups, end = [], None
    for a, b, action in spans:
        if end is None or a > end:
            groups.append([action])
            end = b
        else:
            groups[-1].append(action)
            end = max(end, b)
    return groups


def round_sequence(entries):
    """The rounds as text, e.g. "DescribeNetworkInterfaces×2 | AssignPrivateIpAddresses | ..."."""
    out = []
    for g in round_groups(entries):
        counts = {}
        for a in g:
            counts[a] = counts.get(a, 0) + 1
        out.append("+".join(a + (f"×{k}" if k > 1 else "") for a, k in sorted(counts.items())))
    return " | ".join(out)


# The write that moves each kind of address to the claiming ENI (its `NetworkInterfaceId`).
ADDRESS_WRITES = {"private-ip": "AssignPrivateIpAddresses", "eip": "AssociateAddress"}


def analyse(run, entries, started, visible, eni, tables, resource="route", world=None):
    """The run's switch, visibility, rounds and requests from the proxy's log and the model."""
    if resource != "route":
        return analyse_address(run, entries, started, visible, eni, resource, world)
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
        if "routes" in v and v["answered"] >= t0 and v["routes"].get(VIP_CIDR) == eni:
            seen[v["table"]] = min(seen.get(v["table"], v["visible_from"]), v["visible_from"])
    out = _rounds_of(entries)
    if tables and all(t in done for t in tables):
        out["switch_commit_ms"] = (max(done[t] for t in tables) - t0) * 1000.0
    if tables and all(t in seen for t in tables):
        out["visible_ms"] = (max(seen[t] for t in tables) - t0) * 1000.0
    return out


# Writes that move something: the rounds up to the last one are the claim's read and write, the
# rounds after it its read-back (as many as the consistency window takes).
WRITES = ("ReplaceRoute", "CreateRoute", "DeleteRoute", "AssignPrivateIpAddresses", "AssociateAddress")


def _rounds_of(entries):
    groups = round_groups(entries)
    last = max((i + 1 for i, g in enumerate(groups) if any(a in WRITES for a in g)), default=None)
    return {"rounds": len(groups),
            # up to the round of the last write, and after it (the read-backs)
            "rounds_to_write": last, "rounds_after_write": len(groups) - last if last is not None else None,
            # without the answers EC2 throttled: the rounds that did work (the rest waited for tokens)
            "rounds_served": rounds([e for e in entries if e.get("fault") != "model:throttle"]),
            "round_actions": round_sequence(entries),
            "ec2_requests": sum(1 for e in entries if e.get("action")),
            "switch_commit_ms": None, "visible_ms": None}


def analyse_address(run, entries, started, visible, eni, resource, world):
    """analyse() for a private IP or an Elastic IP: switch = the model answered the write that
    moved it to `eni`; visible = from then on every describe through the model shows it there
    (a private IP: on `eni` and on no other ENI of the move; an Elastic IP: associated with `eni`)."""
    t0 = run["t0"]
    out = _rounds_of(entries)
    ends = [started + e["t"] + (e.get("ms") or 0.0) / 1000.0 for e in entries
            if e.get("action") == ADDRESS_WRITES[resource] and e.get("status") == 200
            and (e.get("params") or {}).get("NetworkInterfaceId") == eni]
    if ends:
        out["switch_commit_ms"] = (min(ends) - t0) * 1000.0
    mine = [v for v in visible if v.get("kind") and v["answered"] >= t0]
    if resource == "private-ip":
        ip = world.w["secondary_ip"]["ip"]
        here = [v["visible_from"] for v in mine
                if v["kind"] == "network_interface" and v["id"] == eni and ip in v["state"]]
        gone = [v["visible_from"] for v in mine
                if v["kind"] == "network_interface" and v["id"] != eni and ip not in v["state"]]
        if here and gone:
            out["visible_ms"] = (max(min(here), min(gone)) - t0) * 1000.0
    else:
        alloc = world.w["eip"]["allocation_id"]
        here = [v["visible_from"] for v in mine if v["kind"] == "address" and v["id"] == alloc and v["state"] == eni]
        if here:
            out["visible_ms"] = (min(here) - t0) * 1000.0
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
    wanted = [k for k in args.model_contenders.split(",") if k not in MODE_KEYS]
    if not args.model_modes_only:
        for index, n in enumerate(args.model_tables):
            run_world(args, procs, moto, proxy, workdir, results, n, 60 + index, wanted)
    modes = [k for k in args.model_modes.split(",") if k]
    if modes:
        results["modes"] = run_modes(args, procs, moto, proxy, workdir, modes)
    if args.smoke and not args.model_modes_only:
        # Not in the summary (its bucket is not EC2's): only checked to have worked.
        extra = {"runs": [], "worlds": [], "unavailable": {}}
        run_world(args, procs, moto, proxy, workdir, extra, SMOKE_THROTTLED["tables"], 59,
                  [k for k in wanted if k in SMOKE_THROTTLED["contenders"]], throttle=SMOKE_THROTTLED["throttle"])
        results["smoke_throttled"] = extra
    return results


def run_modes(args, procs, moto, proxy, workdir, wanted):
    """The address modes' cell (MODES): its own world, every service time, `--model-runs` each."""
    unknown = sorted(set(wanted) - set(MODES["contenders"]))
    if unknown:
        raise SystemExit(f"--model-modes: unknown {unknown}; known: {','.join(MODES['contenders'])}")
    out = {"runs": [], "worlds": [], "unavailable": {}, "latencies": args.latencies, "tables": [MODES["tables"]],
           "window_ms": list(args.window), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    run_world(args, procs, moto, proxy, workdir, out, MODES["tables"], MODES["cidr_index"],
              [k for k in MODES["contenders"] if k in wanted], flags=MODES["flags"], warmup_model=MODES["warmup_model"])
    return out


def effective_config(proxy, args, throttle=None):
    """The model's configuration with every default filled in, as the proxy reports it."""
    cfg = proxy.model(model_config(args, 0, args.model_seed, throttle))["config"]
    proxy.off()
    return cfg


def run_world(args, procs, moto, proxy, workdir, results, n, index, wanted, throttle=None, flags=(),
              warmup_model=None):
    """One table count: a world, its contenders set up once, then every service time."""
    from services import Floor, World

    label = (f"{n} route table(s)" + (f", throttle {json.dumps(throttle)}" if throttle else "")
             + (f", world {' '.join(flags)}" if flags else ""))
    log(f"== EC2 model: {label}")
    mutating = effective_config(proxy, args, throttle)["throttle"]["categories"]["mutating"]
    bucket = (int(mutating["size"]), int(mutating["refill"]))
    world = World(procs, moto, n, index, workdir, flags=flags)
    reset_floor = Floor(procs, world, workdir)  # straight at moto: puts the routes back, untimed
    ctx = ModelContext(world, reset_floor, workdir, procs, proxy, bucket, args.floor_margin_ms)
    if warmup_model is not None:
        proxy.model(warmup_model)
    try:
        live = set_up(args, ctx, n, wanted, results)
    finally:
        if warmup_model is not None:
            proxy.off()
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
    results["worlds"].append({"tables": n, "vpc": world.w["vpc"], "route_tables": world.tables,
                              **{k: world.w[k] for k in ("secondary_ip", "eip") if k in world.w}})


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


def resource_of(c):
    """What a contender's claim moves: "route" (every table's VIP route), "private-ip" or "eip"."""
    return getattr(c, "resource", "route")


def holder_of(resource, seen):
    """The one member holding the resource, from World.holder(), or None."""
    if resource == "route":
        return seen[0] if len(set(seen)) == 1 else None
    return seen if seen in ("A", "B") else None


def run_cell(args, ctx, moto, live, latency, throttle, results):
    """One service time: the contenders' runs interleaved, run by run."""
    holders = {r: holder_of(r, ctx.world.holder(r)) for r in {resource_of(c) for c in live}}
    for i in range(max([runs_of(args, c) for c in live] or [0])):
        for c in live:
            if i < runs_of(args, c):
                row = run_one(args, ctx, moto, c, i, holders[resource_of(c)], latency, throttle)
                holders[resource_of(c)] = row.pop("holder_after")
                results["runs"].append(row)


def run_one(args, ctx, moto, c, i, holder, latency, throttle):
    """One timed run from a reset world and a fresh model; returns its row."""
    proxy, world, n = ctx.proxy, ctx.world, len(ctx.world.tables)
    resource = resource_of(c)
    frm, to = c.plan(i)
    if holder != frm:
        world.reset(resource, frm, ctx.floor)
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
    seen = world.holder(resource)
    row = {"contender": c.key, "tables": n, "latency_ms": latency, "i": i, "from": frm, "to": to,
           "t0": r.t0, "t1": r.t1, "claim_ms": r.claim_ms, "ok": bool(r.ok),
           "error": r.error if not r.ok else None,
           **({"routes_after": seen, "verified": seen == to * n} if resource == "route"
              else {"resource": resource, "holder_after_run": seen, "verified": seen == to}), **_extra(r),
           "requests": stats.get("requests", {}), "throttled": sum(stats.get("throttled", {}).values()),
           "throttled_by_action": stats.get("throttled", {}),
           "max_in_flight": stats.get("max_in_flight"), "stale_answers": sum(stats.get("stale", {}).values())}
    row.update(analyse(row, entries, proxy.started, visible, world.eni[to], world.tables, resource, world))
    row["moto_busy_ms"] = busy([m for m in served if m["t1"] <= max(r.t1, r.t0)]) * 1000.0
    log_run(row, c.key, frm, to)
    row["holder_after"] = holder_of(resource, seen)
    return row


def log_run(row, key, frm, to):
    mark = "ok" if row["ok"] and row["verified"] else "FAILED"
    ms = f"{row['claim_ms']:9.1f} ms" if row["claim_ms"] is not None else "        - ms"
    vis = f"{row['visible_ms']:7.0f}" if row["visible_ms"] is not None else "      -"
    log(f"   {row['latency_ms']:>3} ms {key:<9} #{row['i'] + 1:<2} {frm}->{to} {ms}  visible {vis} ms  "
        f"rounds {row['rounds']:<3} throttled {row['throttled']:<3} {mark}"
        + (f": {str(row['error'])[:300]}" if mark != "ok" else "")
        + (f"  [{row['round_actions'][:160]}]" if row["tables"] == 1 else ""))


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
