#!/usr/bin/env python3
"""The reader's view of a switch: DescribeRouteTables as fast as one client can, logged.

    poller.py --endpoint URL --vip V --tables rtb-1,rtb-2 --holders eni-a=A,eni-b=B --out FILE

Commands on stdin: `on` starts polling, `off` stops it and answers `off <polls>` once FILE is
flushed, `quit` ends. One line per poll in FILE: `t_send t_recv STATES`, times in CLOCK_MONOTONIC
seconds, STATES one character per table in --tables order: the holder's letter, `-` when the table
has no route for the VIP, `?` for any other target.

One keep-alive connection; the request is signed once (moto routes by the SigV4 scope and does
not check signatures) so the client side costs almost nothing next to the server's answer.
"""

import argparse
import http.client
import select
import sys
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlparse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

NS = "{http://ec2.amazonaws.com/doc/2016-11-15}"


def signed_request(endpoint, region, tables):
    body = "Action=DescribeRouteTables&Version=2016-11-15" + "".join(
        f"&RouteTableId.{i + 1}={t}" for i, t in enumerate(tables))
    req = AWSRequest(method="POST", url=endpoint + "/", data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                              "User-Agent": "irisvip-bench-poller"})
    SigV4Auth(Credentials("bench", "bench"), "ec2", region).add_auth(req)
    return body.encode(), dict(req.headers.items())


def states(xml, vip, tables, holders):
    seen = {}
    root = ET.fromstring(xml)
    for table in root.iter(NS + "routeTableSet"):
        for item in table.findall(NS + "item"):
            tid = item.findtext(NS + "routeTableId")
            mark = "-"
            for route in item.iterfind(f"{NS}routeSet/{NS}item"):
                if route.findtext(NS + "destinationCidrBlock") == vip:
                    mark = holders.get(route.findtext(NS + "networkInterfaceId") or "", "?")
                    break
            seen[tid] = mark
    return "".join(seen.get(t, "-") for t in tables)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--vip", required=True)
    p.add_argument("--tables", required=True)
    p.add_argument("--holders", required=True, help="eni-1=A,eni-2=B")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    tables = args.tables.split(",")
    holders = dict(h.split("=", 1) for h in args.holders.split(","))
    vip = args.vip if "/" in args.vip else args.vip + "/32"
    body, headers = signed_request(args.endpoint, args.region, tables)
    url = urlparse(args.endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    out = open(args.out, "w", buffering=1 << 20)
    polls = 0
    active = False
    stdin = sys.stdin
    print("ready", flush=True)
    while True:
        if not active or select.select([stdin], [], [], 0)[0]:
            line = stdin.readline()
            if not line or line.strip() == "quit":
                break
            cmd = line.strip()
            if cmd == "on":
                active = True
            elif cmd == "off":
                active = False
                out.flush()
                print(f"off {polls}", flush=True)
            continue
        t_send = time.monotonic()
        try:
            conn.request("POST", "/", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            t_recv = time.monotonic()
            mark = states(data, vip, tables, holders) if resp.status == 200 else "!" * len(tables)
        except (OSError, http.client.HTTPException, ET.ParseError):
            conn.close()
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            continue
        out.write(f"{t_send:.6f} {t_recv:.6f} {mark}\n")
        polls += 1
    out.close()


if __name__ == "__main__":
    main()
