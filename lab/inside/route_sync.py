#!/usr/bin/env python3
"""Runs in the `vpc` namespace: the VPC data plane. Mirrors the VIP route of one route table
(the one the client's subnet uses) from moto into this namespace's kernel routing table.

    route_sync.py --endpoint http://127.0.0.1:PORT --table rtb-.. --vip 192.168.240.10 \
                  --member A=eni-..=10.20.1.4 --member B=eni-..=10.20.2.4 --interval-ms 5

Route points at a member's ENI  -> ip route replace VIP/32 via <that member's private IP>
absent, blackhole, unknown ENI  -> ip route replace unreachable VIP/32

A poll is one DescribeRouteTables over a kept-alive HTTP connection, SigV4-signed by botocore
but without boto3's client machinery (which costs more CPU than moto's answer takes). After each
answer the loop sleeps --interval-ms, so moto is never polled back to back and the library's
own calls are not starved. Prints JSON lines:
  {"ev":"route","t_after":..,"t_seen":..,"t_applied":..,"member":"A"|null,"target":..,"state":..,"kernel":..}
     the change happened in moto within (t_after, t_seen]; the kernel had it at t_applied
  {"ev":"stats",...}   poll count and durations, on SIGTERM
All times are time.monotonic(), shared by every process of the machine.
"""

import argparse
import http.client
import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlparse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

NS = "{http://ec2.amazonaws.com/doc/2016-11-15}"


class Poller:
    def __init__(self, endpoint, table, region):
        u = urlparse(endpoint)
        self.host, self.port, self.endpoint = u.hostname, u.port, endpoint
        self.body = f"Action=DescribeRouteTables&Version=2016-11-15&RouteTableId.1={table}"
        self.signer = SigV4Auth(Credentials("lab", "lab"), "ec2", region)
        self.conn = None

    def describe(self):
        req = AWSRequest(method="POST", url=self.endpoint + "/", data=self.body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        self.signer.add_auth(req)  # moto routes requests by the SigV4 scope
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                self.conn.request("POST", "/", body=self.body, headers=dict(req.headers.items()))
                r = self.conn.getresponse()
                data = r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}: {data[:200]!r}")
                return ET.fromstring(data)
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise


def vip_route(root, dest):
    """(target ENI or other target id, state) of the VIP route, or (None, "absent")."""
    for item in root.iter(NS + "item"):
        if item.findtext(NS + "destinationCidrBlock") == dest:
            target = (item.findtext(NS + "networkInterfaceId") or item.findtext(NS + "instanceId")
                      or item.findtext(NS + "gatewayId"))
            return target, item.findtext(NS + "state") or "active"
    return None, "absent"


def pct(xs, q):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 3) if xs else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--vip", required=True)
    p.add_argument("--member", action="append", default=[], help="NAME=ENI=PRIVATE_IP")
    p.add_argument("--interval-ms", type=float, default=5.0)
    p.add_argument("--region", default="us-east-1")
    a = p.parse_args()
    members = {}
    for spec in a.member:
        name, eni, addr = spec.split("=")
        members[eni] = (name, addr)
    dest = a.vip + "/32"
    poller = Poller(a.endpoint, a.table, a.region)
    durations, periods, errors = [], [], 0

    def stats(*_):
        print(json.dumps({"ev": "stats", "polls": len(durations), "errors": errors, "interval_ms": a.interval_ms,
                          "poll_ms_p50": pct(durations, 0.5), "poll_ms_p95": pct(durations, 0.95),
                          "poll_ms_max": pct(durations, 1.0), "period_ms_p50": pct(periods, 0.5),
                          "period_ms_p95": pct(periods, 0.95), "period_ms_max": pct(periods, 1.0)}), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stats)
    current = ("<none yet>",)
    prev_start = None
    print(json.dumps({"ev": "ready", "t": time.monotonic()}), flush=True)
    while True:
        t_req = time.monotonic()
        try:
            root = poller.describe()
        except Exception as e:  # report and keep mirroring: a data plane does not stop
            errors += 1
            print(json.dumps({"ev": "error", "t": t_req, "error": str(e)[:200]}), flush=True)
            time.sleep(0.05)
            continue
        t_seen = time.monotonic()
        durations.append((t_seen - t_req) * 1000)
        if prev_start is not None:
            periods.append((t_req - prev_start) * 1000)
        target, state = vip_route(root, dest)
        name, via = members.get(target, (None, None)) if state == "active" else (None, None)
        want = (name, target, state)
        if want != current:
            kernel = f"via {via}" if via else "unreachable"
            cmd = ["ip", "route", "replace", dest, "via", via] if via else ["ip", "route", "replace", "unreachable", dest]
            subprocess.run(cmd, check=True)
            print(json.dumps({"ev": "route", "t_after": prev_start if prev_start is not None else t_req,
                              "t_seen": t_seen, "t_applied": time.monotonic(), "member": name,
                              "target": target, "state": state, "kernel": kernel}), flush=True)
            current = want
        prev_start = t_req
        time.sleep(a.interval_ms / 1000.0)


if __name__ == "__main__":
    main()
