#!/usr/bin/env python3
"""irisvip failover lab: do clients reach the VIP again after a failover, and how soon?

Real packets between network namespaces on this machine: a client, two mirror members in two
subnets (two "AZs"), and a VPC router whose kernel route to the VIP follows moto's route tables.
The library moves the route from inside each member, loaded by zfhost as IRIS loads it.

    lab/lab.py [--scenarios 1,2,3,4,5,6] [--repeat N] [--sync-ms 5] [--json out.json] [--plot out.png]

Scenarios: 1 cold start, 2 unplanned failover, 3 planned failover (release, then claim),
4 late release race, 5 fail-back to A, 6 private-ip failover (mode=private-ip: both members in
one subnet, the VIP a secondary private IP that B's claim moves from A's ENI; EC2 through the
EC2 model of tests/support/faultproxy.py). Needs root (network namespaces); exits 3, with one
line on stderr, where namespaces cannot be created. Exits 1 when a check failed, 0 otherwise.
"""

import argparse
import atexit
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import netns  # noqa: E402
import report  # noqa: E402
from scenarios import IP_SCENARIOS, NAMES, Runner, ScenarioFailed  # noqa: E402
from services import EC2_MODEL, EC2_MODEL_PORT, Lab, SERVICE_PORT  # noqa: E402

EXIT_NO_NETNS = 3


def ensure_venv():
    """Re-run under the project's interpreter (boto3, moto, matplotlib) when started with
    another one, so `lab/lab.py` works as typed: $IRISVIP_PYTHON (the Makefile exports it), else
    the checkout's .venv."""
    want = os.environ.get("IRISVIP_PYTHON") or os.path.join(os.path.dirname(HERE), ".venv", "bin", "python")
    venv = os.path.dirname(os.path.dirname(want))
    if os.path.exists(want) and os.path.realpath(sys.prefix) != os.path.realpath(venv):
        os.execv(want, [want, os.path.abspath(__file__), *sys.argv[1:]])


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--scenarios", default="1,2,3,4,5,6", help="comma-separated scenario numbers (default 1,2,3,4,5,6)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each scenario (default 3)")
    p.add_argument("--sync-ms", type=float, default=5.0, help="route sync loop: pause between two polls of moto (default 5)")
    p.add_argument("--json", metavar="FILE", help="write every sample, route change, call and metric as JSON")
    p.add_argument("--plot", metavar="FILE", help="write a PNG timeline (client replies by member, claims marked)")
    p.add_argument("--observe-ms", type=float, default=300.0, help="steady traffic watched around each event (default 300)")
    p.add_argument("--detect-ms", type=float, default=0.0,
                   help="scenarios 2 and 6: pause between A's death and B's claim, standing for the mirror's own failure detection (default 0)")
    p.add_argument("--tables", type=int, default=2, help="route tables in the VPC (default 2; the client's subnet uses the last)")
    p.add_argument("--conn-interval-ms", type=float, default=7.0, help="client: a new connection every N ms (default 7)")
    p.add_argument("--conn-timeout-ms", type=float, default=200.0, help="client: a new connection's deadline (default 200)")
    p.add_argument("--session-interval-ms", type=float, default=10.0, help="client: session request pacing (default 10)")
    p.add_argument("--session-timeout-ms", type=float, default=300.0,
                   help="client: a session reply missing this long breaks the session (default 300)")
    p.add_argument("--zfhost", help="the callout host (default $CARGO_TARGET_DIR or target/, release/examples/zfhost)")
    p.add_argument("--quiet", action="store_true", help="no per-run timelines, only summary lines and the table")
    p.add_argument("--keep-logs", action="store_true", help="keep the children's stderr files (path printed)")
    a = p.parse_args(argv)
    try:
        a.scenario_list = [int(x) for x in a.scenarios.split(",") if x.strip()]
    except ValueError:
        p.error(f"--scenarios: not a list of numbers: {a.scenarios!r}")
    unknown = [s for s in a.scenario_list if s not in NAMES]
    if unknown or not a.scenario_list:
        p.error(f"--scenarios: choose among {','.join(map(str, NAMES))}")
    if a.repeat < 1 or a.sync_ms < 0:
        p.error("--repeat must be >= 1 and --sync-ms >= 0")
    return a


def install_signal_handlers(lab):
    """SIGINT/SIGTERM/SIGHUP unwind through the finally blocks (which tear the lab down); a
    second signal during tear-down is ignored so the tear-down itself is never cut short."""

    def handler(signum, _frame):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        print(f"lab: {signal.Signals(signum).name}: removing the namespaces and stopping every process",
              file=sys.stderr)
        raise SystemExit(128 + signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)
    atexit.register(lab.close)


def describe(lab, a):
    w, t = lab.world, lab.topo
    print(f"lab: VPC {w['vpc']} {w['cidr']} in moto, inside namespace {t.ns['vpc']} (router {t.gw('a')}, "
          f"{t.gw('b')}, {t.gw('c')})")
    for mem in lab.members.values():
        i = mem.ident
        print(f"  member {mem.name}: {t.ns[mem.role]}, {i['private_ip']} in {i['az']}, {i['instance_id']} {i['eni']}, "
              f"VIP {netns.VIP} on {netns.VIP_LABEL}, IMDSv2 at {netns.IMDS_ADDR}:80, service on :{SERVICE_PORT}; "
              f"library loaded in {mem.load['ms']:.1f} ms")
    print(f"  client: {t.ns['c']}, {t.client_ip}; its subnet uses {w['client_table']} "
          f"(tables: {', '.join(w['route_tables'])})")
    print(f"  route sync: poll, then pause {a.sync_ms:g} ms; client: new connection every {a.conn_interval_ms:g} ms "
          f"(deadline {a.conn_timeout_ms:g} ms), session request every {a.session_interval_ms:g} ms "
          f"(breaks after {a.session_timeout_ms:g} ms)")
    print(f"  member config string: {lab.members['a'].config!r} (A), {lab.members['b'].config!r} (B)")
    if lab.ip is not None:
        ip, w = lab.ip, lab.ip.world
        print(f"lab: private-ip site (scenario 6): VPC {w['vpc']} {w['cidr']}, both members in {w['a']['subnet']} "
              f"{w['secondary_ip']['cidr']}; VIP {ip.vip}, a secondary private IP of that subnet")
        for mem in ip.members.values():
            i = mem.ident
            print(f"  member {mem.name}: {t.ns[mem.role]}, {i['private_ip']} in {i['az']}, {i['instance_id']} {i['eni']}, "
                  f"VIP {ip.vip} on {netns.VIP_LABEL}; library loaded in {mem.load['ms']:.1f} ms")
        print(f"  EC2 through the EC2 model (faultproxy.py {json.dumps(EC2_MODEL)}), for the members at "
              f"{t.gw('pa')}:{EC2_MODEL_PORT} and for the data plane, which routes {ip.vip} to the ENI holding it")
        print(f"  member config string: {ip.members['a'].config!r} (A), {ip.members['b'].config!r} (B)")
    print()


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        netns.probe()
    except netns.NetnsUnavailable as e:
        print(f"lab: cannot create network namespaces: {e}", file=sys.stderr)
        return EXIT_NO_NETNS
    client_opts = {"conn_interval_ms": a.conn_interval_ms, "conn_timeout_ms": a.conn_timeout_ms,
                   "session_interval_ms": a.session_interval_ms, "session_timeout_ms": a.session_timeout_ms}
    lab = Lab(zfhost=a.zfhost, sync_ms=a.sync_ms, tables=a.tables, client_opts=client_opts, keep_logs=a.keep_logs,
              ip_site=any(s in IP_SCENARIOS for s in a.scenario_list))
    install_signal_handlers(lab)
    runs, aborted = [], None
    t0 = time.monotonic()
    try:
        try:
            lab.start()
        except RuntimeError as e:  # a missing binary, a program that would not start: say which
            print(f"lab: could not start: {e}", file=sys.stderr)
            return 1
        describe(lab, a)
        runner = Runner(lab, observe_s=a.observe_ms / 1000.0, detect_ms=a.detect_ms)
        for sid in a.scenario_list:
            for rep in range(1, a.repeat + 1):
                try:
                    run = runner.run(sid, rep)
                except ScenarioFailed as e:
                    aborted = f"scenario {sid} ({NAMES[sid]}) run {rep}: {e}"
                    break
                runs.append(run)
                if not a.quiet:
                    print(f"scenario {sid} ({NAMES[sid]}) run {rep}/{a.repeat}, times relative to its event:")
                    print("\n".join(report.timeline(lab.rec_of(run), run)))
                print(report.summary_line(run) + ("\n" if not a.quiet else ""))
            if aborted:
                break
        lab.stop_traffic()  # the sync loop reports its poll statistics as it stops
        print(report.table(runs))
        st = lab.rec.sync_stats or {}
        print(f"\nroute sync: {st.get('polls')} polls, pause {a.sync_ms:g} ms, poll p50 {st.get('poll_ms_p50')} ms / "
              f"p95 {st.get('poll_ms_p95')} ms / max {st.get('poll_ms_max')} ms, period p50 {st.get('period_ms_p50')} ms / "
              f"max {st.get('period_ms_max')} ms, errors {st.get('errors')}")
        model = None
        if lab.ip is not None and lab.ip.sync is not None:
            st = lab.ip.rec.sync_stats or {}
            print(f"address sync (private-ip site, through the EC2 model): {st.get('polls')} polls, poll p50 "
                  f"{st.get('poll_ms_p50')} ms / p95 {st.get('poll_ms_p95')} ms / max {st.get('poll_ms_max')} ms, "
                  f"period p50 {st.get('period_ms_p50')} ms / max {st.get('period_ms_max')} ms, errors {st.get('errors')}")
            model = lab.ip.model_state()
            if model:
                print(f"EC2 model: {model.get('addresses')} (moved: a reassigned address taken off its old ENI, "
                      f"which moto alone would leave there), refused {model.get('refused')}")
        params = {k: v for k, v in vars(a).items() if k != "scenario_list"}
        params["service_port"] = SERVICE_PORT
        if a.json:
            report.write_json(a.json, params, lab, runs, model=model)
            print(f"json: {a.json}")
        if a.plot and runs:
            report.plot(a.plot, lab.rec, runs, rec_of=lab.rec_of)
            print(f"plot: {a.plot}")
        print(f"lab time: {time.monotonic() - t0:.1f} s")
        if aborted:
            print(f"lab: stopped early: {aborted}", file=sys.stderr)
        failed = [r for r in runs if r.get("errors") or not all(c["ok"] for c in r["checks"])]
        return 1 if aborted or failed else 0
    finally:
        lab.close()
        if a.keep_logs:
            print(f"logs: {lab.log_dir}", file=sys.stderr)


if __name__ == "__main__":
    ensure_venv()
    sys.exit(main())
