#!/usr/bin/env python3
"""make bench: every way of moving the VIP, against the same moto and IMDS, in one run.

    bench.py [--phases moto,model] [--runs 15] [--tables 1,4,16] [--contenders ...]
             [--latencies 0,50,150] [--model-tables 1,4,16,64] [--model-runs 7] [--model-slow-runs 2]
             [--model-modes ...] [--model-modes-only] [--out DIR] [--smoke]

Creates a network namespace (netns.py) and re-runs itself inside it. There, two phases:

moto (as it always was): one moto (motolog.py) and, per route-table count, a world with members
A and B (services.py); each contender (contenders.py) runs `--runs` times per sub-phase,
interleaved run by run:
- quiet: nothing else talks to moto: claim latency and the commit-side switch;
- polled: poller.py reads the tables as fast as it can: the reader-side switch and the
  no-route observations.
Every run starts from a known holder (put there untimed by the floor tool) and really switches.
Writes DIR/results.json, DIR/results.md and DIR/benchmarks.png.

model (model.py): the same contenders over HTTPS through the EC2 model (service time per request
in parallel, EC2's token buckets, eventual consistency), per service time and table count: claim,
switch, when every table is visible, throttled requests, sequential rounds, ratios to the floor;
then the address modes' cell (mode=private-ip and mode=eip, warm and cold, beside the route claim
with 1 table, in a world of their own). Writes DIR/results-model.json, DIR/results-model.md and
DIR/benchmarks-model.png. --model-modes-only runs that cell alone and merges it into the
DIR/results-model.json already there (its other cells are kept as they were measured).

With the default DIR (bench/) each phase also puts its markdown into BENCHMARKS.md, between its
markers, and prints its table. Exits non-zero when a run of the moto phase, or a run of the floor
or irisvip in the model phase, failed (the other tools failing under throttling is a result), or,
with --require-all, when a contender could not run or any run failed.
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
    p.add_argument("--phases", default="moto,model", help="moto (the emulator as it is), model (the EC2 model)")
    p.add_argument("--latencies", default="0,50,150", help="model phase: service times per request, ms")
    p.add_argument("--model-tables", default="1,4,16,64", help="model phase: route-table counts")
    p.add_argument("--model-runs", type=int, default=7, help="model phase: runs per cell of floor, warm, cold")
    p.add_argument("--model-slow-runs", type=int, default=2, help="model phase: runs per cell of seed, awscli, agent")
    p.add_argument("--model-contenders", default="floor,warm,cold,warm-role,cold-role,seed,awscli,agent")
    p.add_argument("--model-modes", default="floor,warm,cold,warm-private-ip,cold-private-ip,warm-eip,cold-eip",
                   help="model phase: the contenders of the address modes' cell (1 table, one subnet, a secondary "
                        "private IP and an Elastic IP); empty: no such cell")
    p.add_argument("--model-modes-only", action="store_true",
                   help="model phase: only the address modes' cell (~6 min), merged into DIR/results-model.json")
    p.add_argument("--agent-max-tables", type=int, default=4,
                   help="model phase: aws-vpc-move-ip only up to this many tables (it sleeps 1 s per table, 3x)")
    p.add_argument("--window", default="0,500", help="model phase: consistency window [min,max] ms")
    p.add_argument("--model-seed", type=int, default=1, help="model phase: run i seeds the model with this + i")
    p.add_argument("--floor-margin-ms", type=float, default=25.0,
                   help="model phase: how long after a refill the floor's next share reaches the bucket")
    p.add_argument("--smoke", action="store_true",
                   help="1 run, 1 table (model: one service time, 50 ms, and 3 tables for floor, warm and cold "
                        "with a mutating bucket of 2 + 1/s, so the throttled paths run too): checks that the bench "
                        "still works")
    p.add_argument("--require-all", action="store_true", help="fail when a contender cannot run here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, poll records)")
    p.add_argument("--render", action="store_true",
                   help="measure nothing: rebuild results.md, benchmarks.png (and BENCHMARKS.md) from DIR/results.json")
    p.add_argument("--inside", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.runs, args.tables = 1, "1"
        args.model_runs = args.model_slow_runs = 1
        args.model_tables, args.latencies = "1", "50"
        # The modes' cell without the route contenders the 1-table cell already runs.
        args.model_modes = ",".join(k for k in args.model_modes.split(",") if k not in ("floor", "warm", "cold"))
    args.phase_list = [x for x in args.phases.split(",") if x]
    unknown = set(args.phase_list) - {"moto", "model"}
    if unknown:
        p.error(f"--phases: unknown {sorted(unknown)}; known: moto, model")
    args.latencies = [float(x) if "." in x else int(x) for x in args.latencies.split(",")]
    args.model_tables = [int(x) for x in args.model_tables.split(",")]
    lo, hi = (float(x) for x in args.window.split(","))
    if lo > hi or lo < 0:
        p.error("--window: min,max with 0 <= min <= max")
    args.window = (lo, hi)
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


def run_world(args, procs, moto, n_tables, index, workdir, results):
    import analysis
    import contenders as C
    from services import Floor, Poller, World, reset_to

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


def previous_sizes():
    """The library sizes the moto phase's last full run measured (bench/results.json): what the
    model phase's size table compares against."""
    try:
        with open(os.path.join(HERE, "results.json")) as f:
            old = json.load(f)
    except (OSError, ValueError):
        return None
    cost = old.get("cost") or {}
    return {"so": cost.get("so"), "so_dist": cost.get("so_dist"),
            "commit": ((old.get("machine") or {}).get("library") or {}).get("commit"), "run": old.get("started")}


def model_sizes(results, lib):
    """Measures what results["sizes"] lacks: the test build `lib` (the one the runs loaded) and the
    `make dist` library, which may be built after the runs (re-rendering picks it up)."""
    import model_report
    from contenders import dist_lib

    sizes = results.get("sizes") or {}
    fresh = model_report.measure_sizes(lib if not sizes.get("test") else None,
                                       dist_lib() if not sizes.get("dist") else None, previous_sizes())
    for key in ("test", "dist"):
        if not sizes.get(key) and fresh.get(key):
            sizes[key] = fresh[key]
            sizes[key]["sha256"] = sha256_12(fresh[key]["path"])
    sizes["before"] = fresh.get("before") or sizes.get("before")
    results["sizes"] = sizes


def sha256_12(path):
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]


def write_model_outputs(args, results):
    import model_report
    import report

    with open(os.path.join(args.out, "results-model.json"), "w") as f:
        json.dump(results, f, indent=1)  # the runs first: a report that fails loses no measurement
    results["summary"] = model_report.summarise(results)
    if results.get("modes"):
        results["modes"]["summary"] = model_report.summarise(results["modes"], model_report.MODES_ORDER)
    with open(os.path.join(args.out, "results-model.json"), "w") as f:
        json.dump(results, f, indent=1)
    md = model_report.markdown(results)
    with open(os.path.join(args.out, "results-model.md"), "w") as f:
        f.write(md)
    model_report.plot(results, os.path.join(args.out, "benchmarks-model.png"))
    if os.path.abspath(args.out) == HERE:
        report.update_benchmarks_md(os.path.join(REPO, "BENCHMARKS.md"), md, model_report.BEGIN, model_report.END)
    print(model_report.console(results))
    print(f"\nwritten: {os.path.relpath(args.out, REPO) if args.out.startswith(REPO) else args.out}/"
          "{results-model.json,results-model.md,benchmarks-model.png}")


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

    if "moto" in args.phase_list and os.path.exists(os.path.join(args.out, "results.json")):
        with open(os.path.join(args.out, "results.json")) as f:
            results = json.load(f)
        old = results.get("cost", {})
        results["cost"] = cost.measure(results["runs"], old.get("so"), old.get("python_boto3_kib"),
                                        old.get("so_dist", False))
        write_outputs(args, results)
    if "model" in args.phase_list and os.path.exists(os.path.join(args.out, "results-model.json")):
        with open(os.path.join(args.out, "results-model.json")) as f:
            results = json.load(f)
        # The test build measured at render time only if it is the one the runs loaded.
        lib = release("libirisvip.so")
        measured = ((results.get("machine") or {}).get("library") or {}).get("sha256")
        model_sizes(results, lib if os.path.exists(lib) and sha256_12(lib) == measured else None)
        write_model_outputs(args, results)
    return 0


def inside(args):
    os.makedirs(args.out, exist_ok=True)
    rc = 0
    if "moto" in args.phase_list:
        rc = max(rc, moto_phase(args))
    if "model" in args.phase_list:
        rc = max(rc, model_phase(args))
    return rc


def _args(args):
    return {k: v for k, v in vars(args).items() if k not in ("inside", "phase_list")}


def moto_phase(args):
    import cost
    from services import Moto

    workdir = tempfile.mkdtemp(prefix="irisvip-bench-")
    procs = Procs()
    results = {"machine": machine(), "args": _args(args),
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


def snapshot_build(workdir):
    """Copies the library, zfhost and floor into workdir/target/release (the same layout) and
    points release() there: every run of the phase measures one build, even if the tree is
    rebuilt meanwhile (a cold run would otherwise load whatever the linker left at that moment)."""
    names = ["libirisvip.so", os.path.join("examples", "zfhost"), os.path.join("examples", "floor")]
    limit = time.monotonic() + 600
    while True:
        before = [os.stat(release(n)) if os.path.exists(release(n)) else None for n in names]
        time.sleep(2.0)
        after = [os.stat(release(n)) if os.path.exists(release(n)) else None for n in names]
        if all(a is not None and (a.st_size, a.st_mtime) == (b.st_size, b.st_mtime) for a, b in zip(after, before)):
            break
        if time.monotonic() > limit:
            sys.exit("bench: the build kept changing for 10 minutes; nothing to measure")
        log("bench: waiting for the build to settle before copying it")
    target = os.path.join(workdir, "target")
    for n in names:
        os.makedirs(os.path.dirname(os.path.join(target, "release", n)), exist_ok=True)
        shutil.copy2(release(n), os.path.join(target, "release", n))
    os.environ["CARGO_TARGET_DIR"] = target


def model_phase(args):
    import model

    workdir = tempfile.mkdtemp(prefix="irisvip-bench-model-")
    procs = Procs()
    tree = os.environ.get("CARGO_TARGET_DIR")
    snapshot_build(workdir)
    started = machine()  # the library's provenance: the copy keeps its mtime; the commit is the tree's
    sized = {}
    model_sizes(sized, release("libirisvip.so"))  # the copy the runs load, before the work dir goes
    try:
        results = model.run_phase(args, procs, workdir)
        results["sizes"] = sized["sizes"]
    finally:
        procs.stop()
        if tree is None:
            os.environ.pop("CARGO_TARGET_DIR", None)
        else:
            os.environ["CARGO_TARGET_DIR"] = tree
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"bench: model phase logs kept in {workdir}")
    started["loadavg_end"] = os.getloadavg()
    results["machine"] = started
    results["args"] = _args(args)
    results["namespace"] = args.inside
    modes = results.get("modes")
    if modes is not None:
        # The cell's own record: with --model-modes-only it joins results measured at another time.
        modes.update(machine=started, args=results["args"], model_config=results["model_config"])
    # The floor and irisvip must succeed; the others failing under the model is what they do.
    new_runs = results["runs"] + (modes or {}).get("runs", [])
    checked = new_runs + (results.get("smoke_throttled") or {}).get("runs", [])
    if args.model_modes_only:
        results = merge_modes(args, results)
    write_model_outputs(args, results)
    failed = [r for r in checked if not (r["ok"] and r["verified"]) and r["contender"] in model.FAST]
    others = [r for r in new_runs if not (r["ok"] and r["verified"]) and r["contender"] not in model.FAST]
    if others:
        log(f"bench: model phase: {len(others)} run(s) of other tools failed (reported in the table)")
        if args.require_all:  # the smoke run: 1 table, nothing that should throttle anyone
            return 1
    if failed:
        log(f"bench: model phase: {len(failed)} run(s) of the floor or irisvip failed")
        return 1
    unavailable = list(results["unavailable"].items()) + list((modes or {}).get("unavailable", {}).items())
    missing = {k: v for k, v in unavailable if "@" not in k}
    if args.require_all and missing:
        log(f"bench: model phase: contenders that could not run: {missing}")
        return 1
    return 0


def merge_modes(args, results):
    """--model-modes-only: the new address modes' cell into DIR/results-model.json as it is (every
    other cell kept as measured, with its machine, library and sizes); the new results alone if
    there is none."""
    path = os.path.join(args.out, "results-model.json")
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        log(f"bench: no {path} to merge the modes' cell into: writing it alone")
        return results
    old["modes"] = results["modes"]
    log(f"bench: the modes' cell merged into {path} (run {old.get('started')}: its other cells kept)")
    return old


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
