#!/usr/bin/env python3
"""Runs in the `vpc` namespace: waits for moto, builds the world, wires the client's subnet.

    world_setup.py --endpoint http://127.0.0.1:PORT --tables 2 --cidr-index 20

The world is tests/support/world.py's (the one the Rust tests and `make demo` use). On top of
it, the client subnet is explicitly associated with the last route table, so the router follows
the table that the client's subnet really uses, not the main table by accident. Prints one JSON
object: world.py's output plus "client_table".
"""

import argparse
import json
import os
import subprocess
import sys
from urllib.parse import urlparse

import boto3

SUPPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "support")
sys.path.insert(0, SUPPORT)
from waitport import wait_port  # noqa: E402  (tests/support/waitport.py)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--tables", type=int, default=2)
    p.add_argument("--cidr-index", type=int, default=20)
    p.add_argument("--region", default="us-east-1")
    a = p.parse_args()
    u = urlparse(a.endpoint)
    if not wait_port(u.hostname, u.port, 60):
        sys.exit(f"moto did not listen on {u.hostname}:{u.port} within 60 s")
    out = subprocess.run([sys.executable, os.path.join(SUPPORT, "world.py"), "create", "--endpoint", a.endpoint,
                          "--tables", str(a.tables), "--cidr-index", str(a.cidr_index), "--region", a.region],
                         check=True, capture_output=True, text=True).stdout
    world = json.loads(out)
    ec2 = boto3.client("ec2", endpoint_url=a.endpoint, region_name=a.region,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    table = world["route_tables"][-1]
    if table != world["route_tables"][0]:
        ec2.associate_route_table(RouteTableId=table, SubnetId=world["subnet_c"])
    world["client_table"] = table
    print(json.dumps(world), flush=True)


if __name__ == "__main__":
    main()
