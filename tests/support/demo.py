#!/usr/bin/env python3
"""make demo: one failover on the embedded default, through the C ABI.

Starts moto's EC2 server and one IMDSv2 stand-in per member on loopback, builds a VPC with two
members in two AZs and two route tables, then runs two `zfhost` processes (each stands for an
IRIS process that loaded libirisvip.so with $ZF(-4,1)) and walks the VIP:
A claims -> B sees A -> A fails, B claims -> A's late release leaves B -> B releases.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from waitport import wait_port

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VIP = "192.168.240.10"
PY = sys.executable


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, *args, **kw):
        p = subprocess.Popen(*args, **kw)
        self.procs.append(p)
        return p

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


class Member:
    """A zfhost process kept loaded, fed one command line at a time."""

    def __init__(self, procs, name, zfhost, world, m, imds_port):
        self.name = name
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{imds_port}",
            "AWS_ENDPOINT_URL_EC2": world["endpoint"],
            "AWS_ACCESS_KEY_ID": "demo",
            "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        })
        self.p = procs.start([zfhost, "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        self.load = json.loads(self.p.stdout.readline())

    def call(self, entry, config):
        self.p.stdin.write(f"call\t{entry}\t{config}\n")
        self.p.stdin.flush()
        line = json.loads(self.p.stdout.readline())
        return line, json.loads(line["output"])


def routes(world):
    out = subprocess.run([PY, os.path.join(HERE, "world.py"), "routes", "--endpoint", world["endpoint"], "--vip", VIP]
                         + world["route_tables"], check=True, capture_output=True, text=True).stdout
    seen = json.loads(out)
    return [((seen[t] or {}).get("target") or "-") for t in world["route_tables"]]


def main():
    zfhost = os.path.join(target_dir(), "release", "examples", "zfhost")
    if not os.path.exists(zfhost):
        sys.exit(f"{zfhost} is missing: run `make demo` (it builds it)")
    procs = Procs()
    try:
        port = free_port()
        procs.start([os.path.join(os.path.dirname(PY), "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port("127.0.0.1", port):
            sys.exit(f"moto_server did not start on port {port}")
        endpoint = f"http://127.0.0.1:{port}"
        world = json.loads(subprocess.run([PY, os.path.join(HERE, "world.py"), "create", "--endpoint", endpoint, "--tables", "2"],
                                          check=True, capture_output=True, text=True).stdout)
        members = {}
        for name in ("a", "b"):
            m = world[name]
            imds = procs.start([PY, os.path.join(HERE, "imds.py"), "--instance-id", m["instance_id"], "--mac", m["mac"],
                                "--eni", m["eni"], "--vpc", world["vpc"], "--region", world["region"], "--az", m["az"]],
                               stdout=subprocess.PIPE, text=True)
            imds_port = int(imds.stdout.readline().split()[1])
            members[name] = Member(procs, name.upper(), zfhost, world, m, imds_port)

        print(f"world: {world['vpc']} ({world['cidr']}), VIP {VIP}/32 (overlay, outside the VPC)")
        for name in ("a", "b"):
            m = world[name]
            print(f"  member {name.upper()}: {m['instance_id']} {m['eni']} in {m['az']} ({m['private_ip']}); "
                  f"library loaded in {members[name].load['ms']:.1f} ms (pid {members[name].load['pid']})")
        print(f"  route tables: {', '.join(world['route_tables'])}\n")

        cfg = f"vip={VIP}"
        steps = [
            ("A becomes primary: claim", "a", "vip_claim"),
            ("A claims again (re-assert)", "a", "vip_claim"),
            ("B looks", "b", "vip_status"),
            ("A dies; B becomes primary: claim", "b", "vip_claim"),
            ("A's late release", "a", "vip_release"),
            ("B releases", "b", "vip_release"),
        ]
        header = f"{'step':<34} {'ok':<5} {'holder':<7} {'actions':<22} {'lib ms':>7} {'call ms':>8} {'threads':>7}  routes in EC2"
        print(header)
        print("-" * len(header))
        failed = False
        for title, who, entry in steps:
            line, r = members[who].call(entry, cfg)
            acts = ",".join(t.get("action", "-") for t in r.get("route_tables", [])) or "-"
            eni_name = {world["a"]["eni"]: "A", world["b"]["eni"]: "B"}
            seen = ",".join(eni_name.get(t, t) for t in routes(world))
            print(f"{title:<34} {str(r['ok']).lower():<5} {str(r.get('holder')):<7} {acts:<22} "
                  f"{r.get('elapsed_ms', 0):>7} {line['ms']:>8.1f} {line['threads_after']:>7}  {seen}")
            if not r["ok"]:
                failed = True
                print("   error:", json.dumps(r.get("error")))
            for w in r.get("warnings", []):
                print("   warning:", w)
        print("\nlib ms = elapsed_ms reported by the library; call ms = measured around $ZF(-5) by the host;")
        print("threads = threads of the host process after the call (1: the library created none).")
        print("The first call of each member is cold (runtime, IMDSv2 discovery, TLS roots); later ones are warm.")
        if failed:
            sys.exit(1)
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
