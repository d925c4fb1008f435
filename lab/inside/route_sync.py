#!/usr/bin/env python3
"""Runs in the `vpc` namespace: the VPC data plane. Mirrors the VIP route of one route table
(the one the client's subnet uses) from moto into this namespace's kernel routing table.

    route_sync.py --endpoint http://127.0.0.1:PORT --table rtb-.. --vip 192.168.240.10 \
                  --member A=eni-..=10.20.1.4 --member B=eni-..=10.20.2.4 --interval-ms 5

Route points at a member's ENI  -> ip route replace VIP/32 via <that member's private IP>
absent, blackhole, unknown ENI  -> ip route replace unreachable VIP/32

With --address (the private-ip scenario) it follows who holds a private IP instead:

    route_sync.py --endpoint http://127.0.0.1:PROXY --address 10.21.1.200 --vpc vpc-.. \
                  --vip 10.21.1.200 --member A=eni-..=10.21.1.4 --member B=eni-..=10.21.1.5

One DescribeNetworkInterfaces per poll, filtered by addresses.private-ip-address and vpc-id, sent
to the EC2 model (tests/support/faultproxy.py), not to moto: moto's filter sees primary
addresses only, and moto alone would leave a reassigned address on its old ENI too.
Exactly one ENI holds it  -> ip route replace VIP/32 via <that member's private IP>
none, several, unknown    -> ip route replace unreachable VIP/32  (state "absent" / "several")

A poll is one DescribeRouteTables over a kept-alive HTTP connection, SigV4-signed by botocore
but without boto3's client machinery (which costs more CPU than moto's answer takes). After each
answer the loop sleeps --interval-ms, so moto is never polled back to back and the library's
own calls are not starved. Prints JSON lines:
  {"ev":"route","t_after":..,"t_seen":..,"t_applied":..,"member":"A"|null,"target":..,"state":..,"kernel":..}
     the change happened in moto within (t_after, t_seen]; the kernel had it at t_applied
  {"ev":"stats",...}   poll count and durations, on SIGTERM
All times are time.monotonic(), shared by every process of the machine.
SIGUSR1 pauses the polling (the lab runs one site's traffic at a time), SIGUSR2 resumes it;
the time paused counts in no period.
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
    def __init__(self, endpoint, body, region):
        u = urlparse(endpoint)
        self.host, self.port, self.endpoint = u.hostname, u.port, endpoint
        self.body = body
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


def address_holders(root, address):
    """The ENIs whose private IPv4 addresses include address (checked here, whatever the filter did)."""
    out = []
    for eni in root.iter(NS + "networkInterfaceSet"):
        for item in eni.findall(NS + "item"):
            ips = [x.findtext(NS + "privateIpAddress") for x in item.iter(NS + "privateIpAddressesSet")
                   for x in x.findall(NS + "item")]
            if address in ips:
                out.append(item.findtext(NS + "networkInterfaceId"))
    return out


def address_target(root, address):
    """(holder ENI, state) of the address: "assigned", "absent", or "several" (target: all of them)."""
    holders = address_holders(root, address)
    if len(holders) == 1:
        return holders[0], "active"
    return (",".join(holders) or None), ("several" if holders else "absent")


def pct(xs, q):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 3) if xs else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--table", help="follow the VIP route of this route table")
    p.add_argument("--address", help="follow which ENI holds this private IP (through the EC2 model)")
    p.add_argument("--vpc", help="with --address: the VPC whose ENIs are read")
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
    if bool(a.table) == bool(a.address) or (a.address and not a.vpc):
        p.error("give --table, or --address with --vpc")
    if a.table:
        body = f"Action=DescribeRouteTables&Version=2016-11-15&RouteTableId.1={a.table}"
        read = lambda root: vip_route(root, dest)  # noqa: E731
    else:
        body = ("Action=DescribeNetworkInterfaces&Version=2016-11-15"
                f"&Filter.1.Name=addresses.private-ip-address&Filter.1.Value.1={a.address}"
                f"&Filter.2.Name=vpc-id&Filter.2.Value.1={a.vpc}")
        read = lambda root: address_target(root, a.address)  # noqa: E731
    poller = Poller(a.endpoint, body, a.region)
    durations, periods, errors = [], [], 0
    paused = {"on": False}

    def pause(*_):
        paused["on"] = True

    def resume(*_):
        paused["on"] = False

    def stats(*_):
        print(json.dumps({"ev": "stats", "polls": len(durations), "errors": errors, "interval_ms": a.interval_ms,
                          "poll_ms_p50": pct(durations, 0.5), "poll_ms_p95": pct(durations, 0.95),
                          "poll_ms_max": pct(durations, 1.0), "period_ms_p50": pct(periods, 0.5),
                          "period_ms_p95": pct(periods, 0.95), "period_ms_max": pct(periods, 1.0)}), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stats)
    signal.signal(signal.SIGUSR1, pause)
    signal.signal(signal.SIGUSR2, resume)
    current = ("<none yet>",)
    prev_start = None
    print(json.dumps({"ev": "ready", "t": time.monotonic()}), flush=True)
    while True:
        last_before_pause = None
        if paused["on"]:
            while paused["on"]:
                time.sleep(0.01)
            # A change the next poll sees happened after the last poll before the pause; the
            # paused time itself is no period.
            last_before_pause, prev_start = prev_start, None
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
        target, state = read(root)
        name, via = members.get(target, (None, None)) if state == "active" else (None, None)
        want = (name, target, state)
        if want != current:
            kernel = f"via {via}" if via else "unreachable"
            cmd = ["ip", "route", "replace", dest, "via", via] if via else ["ip", "route", "replace", "unreachable", dest]
            subprocess.run(cmd, check=True)
            after = next(t for t in (prev_start, last_before_pause, t_req) if t is not None)
            print(json.dumps({"ev": "route", "t_after": after,
                              "t_seen": t_seen, "t_applied": time.monotonic(), "member": name,
                              "target": target, "state": state, "kernel": kernel}), flush=True)
            current = want
        prev_start = t_req
        time.sleep(a.interval_ms / 1000.0)


if __name__ == "__main__":
    main()
