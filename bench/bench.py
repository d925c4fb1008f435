#!/usr/bin/env python3
"""make bench: every way of moving the VIP, against the same moto and IMDS, in one run.

    bench.py [--runs 15] [--tables 1,4,16] [--contenders floor,warm,cold,seed,awscli,agent]
             [--out DIR] [--smoke]

Creates a network namespace (netns.py) and re-runs itself inside it; there it starts one moto
(motolog.py) and, per route-table count, a world with members A and B (services.py), then runs
each contender (contenders.py) `--runs` times per phase, interleaved run by run:
- quiet phase: nothing else talks to moto: claim latency and the commit-side switch;
- polled phase: poller.py reads the tables as fast as it can: the reader-side switch and the
  no-route observations.
Every run starts from a known holder (put there untimed by the floor tool) and really switches.
Writes DIR/results.json, DIR/results.md (BENCHMARKS.md-ready) and DIR/benchmarks.png, and prints
the table; with the default DIR (bench/) it also puts results.md into BENCHMARKS.md, between its
`bench:results` markers. Exits non-zero when a run failed or, with --require-all, a contender could not run.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import MAC, PY, REPO, Procs, log, now, release  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=15, help="runs per contender, table count and phase")
    p.add_argument("--tables", default="1,4,16", help="route-table counts, one world each")
    p.add_argument("--contenders", default="floor,warm,cold,seed,awscli,agent")
    p.add_argument("--out", default=HERE, help="where results.json, results.md, benchmarks.png go")
    p.add_argument("--settle-ms", type=float, default=100.0, help="quiet time before and after each run")
    p.add_argument("--smoke", action="store_true", help="1 run, 1 table: checks that the bench still works")
    p.add_argument("--require-all", action="store_true", help="fail when a contender cannot run here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, poll records)")
    p.add_argument("--render", action="store_true",
                   help="measure nothing: rebuild results.md, benchmarks.png (and BENCHMARKS.md) from DIR/results.json")
    p.add_argument("--inside", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.runs, args.tables = 1, "1"
    return args


# ---------------------------------------------------------------- outside: the namespace


def outside(args, argv):
    import netns

    if os.geteuid() != 0:
        sys.exit("bench: needs root (it creates a network namespace)")
    for tool in (release("libirisvip.so"), release("examples", "zfhost"), release("examples", "floor")):
        if not os.path.exists(tool):
            sys.exit(f"bench: {tool} is missing: `make build` builds it")
    netns.remove_stale()
    name = f"{netns.PREFIX}{os.getpid()}"
    netns.create(name)
    rc = 1
    child = None
    try:
        child = subprocess.Popen(["ip", "netns", "exec", name, PY, os.path.abspath(__file__), "--inside", name, *argv])
        rc = child.wait()
    except KeyboardInterrupt:
        rc = 130
    finally:
        netns.destroy(name)
    return rc


# ---------------------------------------------------------------- inside: the run


def machine():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with open("/proc/meminfo") as f:
        mem = f"{int(f.readline().split()[1]) // 1024 // 1024} GiB"

    def version(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    import boto3
    import moto
    from contenders import aws_cli

    aws = aws_cli()
    ra = version(["dpkg-query", "-W", "-f", "${Version}", "resource-agents"])
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "memory": mem, "kernel": platform.release(),
        "os": version(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]),
        "python": platform.python_version(), "moto": moto.__version__, "boto3": boto3.__version__,
        "awscli": version([aws, "--version"]) if aws else None, "resource_agents": ra,
        "rustc": version(["rustc", "--version"]),
        "loadavg_start": os.getloadavg(),
        "library": library_provenance(),
    }


def library_provenance():
    """Which library was measured: its mtime and hash, and the commit and state of src/."""
    import hashlib

    so = release("libirisvip.so")
    with open(so, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]

    def git(*a):
        r = subprocess.run(["git", "-C", REPO, *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    dirty = git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock", "build.rs")
    return {"sha256": digest, "built": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(so))),
            "commit": git("rev-parse", "--short", "HEAD"),
            "src_modified_since_commit": bool(dirty) if dirty is not None else None}


def reset_to(world, floor, holder):
    """Points every table at `holder` (untimed), with the floor's warm client; repairs missing routes."""
    want = holder * len(world.tables)
    _, reply = floor.replace(holder)
    if not reply.get("ok"):
        for t in world.tables:
            try:
                world.moto.ec2.replace_route(RouteTableId=t, DestinationCidrBlock="192.168.240.10/32",
                                             NetworkInterfaceId=world.eni[holder])
            except Exception:
                world.moto.ec2.create_route(RouteTableId=t, DestinationCidrBlock="192.168.240.10/32",
                                            NetworkInterfaceId=world.eni[holder])
    seen = world.routes()
    if seen != want:
        raise RuntimeError(f"could not reset the routes to {holder}: {seen}")


def run_world(args, procs, moto, n_tables, index, workdir, results):
    import analysis
    import contenders as C
    from services import Floor, Poller, World

    settle = args.settle_ms / 1000.0
    log(f"== {n_tables} route table(s)")
    world = World(procs, moto, n_tables, 40 + index, workdir)
    floor = Floor(procs, world, workdir)
    ctx = C.Context(world, floor, workdir)
    wanted = args.contenders.split(",")
    live = []
    for cls in C.ALL:
        c = cls()
        if c.key not in wanted:
            continue
        ok, why = c.available()
        if ok:
            try:
                c.setup(ctx)
                live.append(c)
                continue
            except Exception as e:  # noqa: BLE001 - reported in the table, the others go on
                why = f"setup failed: {e}"
        log(f"   {c.key}: cannot run: {why}")
        results["unavailable"].setdefault(c.key, why)
    world_runs = []
    for phase in ("quiet", "polled"):
        active = [c for c in live if phase in c.phases]
        if not active:
            continue
        poller = None
        if phase == "polled":
            poller = Poller(procs, world, os.path.join(workdir, f"polls-{n_tables}.txt"))
            poller.on()
            time.sleep(0.3)
        t_phase = now()
        seen = world.routes()
        holder = seen[0] if len(set(seen)) == 1 else None
        for i in range(args.runs):
            for c in active:
                frm, to = c.plan(i)
                if holder != frm:
                    reset_to(world, floor, frm)
                time.sleep(settle)
                try:
                    r = c.run(to)
                except Exception as e:  # noqa: BLE001
                    r = C.Run(now(), now(), None, False, f"{type(e).__name__}: {e}")
                time.sleep(settle)
                end = max(r.t1, r.t0) + settle
                seen = world.routes()
                holder = seen[0] if len(set(seen)) == 1 else None
                row = {"contender": c.key, "tables": n_tables, "phase": phase, "i": i, "from": frm, "to": to,
                       "t0": r.t0, "t1": r.t1, "end": end, "claim_ms": r.claim_ms, "ok": bool(r.ok),
                       "error": r.error if not r.ok else None, "routes_after": seen,
                       "verified": seen == to * n_tables, **r.extra}
                world_runs.append(row)
                mark = "ok" if row["ok"] and row["verified"] else "FAILED"
                ms = f"{r.claim_ms:9.1f} ms" if r.claim_ms is not None else "        - ms"
                log(f"   {phase:<6} {c.key:<7} #{i + 1:<2} {frm}->{to} {ms} {mark}"
                    + (f": {str(row['error'])[:300]}" if mark != "ok" else ""))
        records = poller.off() if poller else []
        if poller:
            poller.stop()
            results["poll_ms"][str(n_tables)] = analysis.poll_periods(records)
        requests = moto.requests(t_phase)
        recv = [r[1] for r in records]
        for row in world_runs:
            if row["phase"] != phase:
                continue
            row.update(analysis.commit_view(row, requests, world.eni[row["to"]], world.tables))
            if phase == "polled":
                row.update(analysis.poll_view(row, records, recv, n_tables))
    for c in live:
        try:
            c.teardown()
        except Exception as e:  # noqa: BLE001
            log(f"   {c.key}: teardown: {e}")
    floor.stop()
    world.stop()
    results["runs"].extend(world_runs)
    results["worlds"].append({"tables": n_tables, "vpc": world.w["vpc"], "route_tables": world.tables})


def write_outputs(args, results):
    import plot
    import report

    results["summary"] = report.summarise(results)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    md = report.markdown(results)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    plot.plot(results, os.path.join(args.out, "benchmarks.png"))
    if os.path.abspath(args.out) == HERE:
        report.update_benchmarks_md(os.path.join(REPO, "BENCHMARKS.md"), md)
    print(report.console(results))
    print(f"\nwritten: {os.path.relpath(args.out, REPO) if args.out.startswith(REPO) else args.out}/"
          "{results.json,results.md,benchmarks.png}")


def render(args):
    import cost

    with open(os.path.join(args.out, "results.json")) as f:
        results = json.load(f)
    old = results.get("cost", {})
    results["cost"] = cost.measure(results["runs"], old.get("so"), old.get("python_boto3_kib"),
                                    old.get("so_dist", False))
    write_outputs(args, results)
    return 0


def inside(args):
    import cost
    from services import Moto

    os.makedirs(args.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="irisvip-bench-")
    procs = Procs()
    results = {"machine": machine(), "args": {k: v for k, v in vars(args).items() if k != "inside"},
               "namespace": args.inside, "eth0_mac": MAC["A"], "runs": [], "worlds": [], "unavailable": {},
               "poll_ms": {}, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        moto = Moto(procs, workdir)
        for index, n in enumerate(int(x) for x in args.tables.split(",")):
            run_world(args, procs, moto, n, index, workdir, results)
    finally:
        procs.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"bench: logs and poll records kept in {workdir}")
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["cost"] = cost.measure(results["runs"])
    write_outputs(args, results)
    failed = [r for r in results["runs"] if not (r["ok"] and r["verified"])]
    if failed:
        log(f"bench: {len(failed)} run(s) failed")
        return 1
    if args.require_all and results["unavailable"]:
        log(f"bench: contenders that could not run: {results['unavailable']}")
        return 1
    return 0


def main():
    argv = sys.argv[1:]
    args = parse_args(argv)
    if args.render:
        sys.exit(render(args))
    if args.inside:
        sys.exit(inside(args))
    sys.exit(outside(args, argv))


if __name__ == "__main__":
    main()
