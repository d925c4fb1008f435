#!/usr/bin/env python3
"""Runs in the `vpc` namespace: waits for moto, builds the world, wires the client's subnet.

    world_setup.py --endpoint http://127.0.0.1:PORT --tables 2 --cidr-index 20

The world is tests/support/world.py's (the one the Rust tests and `make demo` use). On top of
it, the client subnet is explicitly associated with the last route table, so the router follows
the table that the client's subnet really uses, not the main table by accident. Prints one JSON
object: world.py's output plus "client_table".

With --ip-site M, a second world for the private-ip scenario follows, in its own VPC
10.M.0.0/16: `world.py create --same-subnet --secondary-ip` (both members in subnet 10.M.1.0/24,
member a holding the secondary address 10.M.1.200), printed as a second line. world.py runs in
this process, its image lookup done once for both worlds (moto takes seconds to list its AMIs).
"""

import argparse
import contextlib
import io
import json
import os
import sys
from urllib.parse import urlparse

import boto3

SUPPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "support")
sys.path.insert(0, SUPPORT)
from waitport import wait_port  # noqa: E402  (tests/support/waitport.py)
import world as world_py  # noqa: E402  (tests/support/world.py)


def world_create(*argv):
    """`world.py create ARGV...`, run in this process; its JSON output, parsed."""
    out, saved = io.StringIO(), sys.argv
    sys.argv = [world_py.__file__, "create", *argv]
    try:
        with contextlib.redirect_stdout(out):
            world_py.main()
    finally:
        sys.argv = saved
    return json.loads(out.getvalue())


def image_once():
    """world.py's any_image, asked of moto once per process."""
    lookup, seen = world_py.any_image, {}

    def any_image(ec2):
        if "id" not in seen:
            seen["id"] = lookup(ec2)
        return seen["id"]

    world_py.any_image = any_image


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--tables", type=int, default=2)
    p.add_argument("--cidr-index", type=int, default=20)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--ip-site", type=int, default=None, help="also build the private-ip world, VPC 10.M.0.0/16")
    a = p.parse_args()
    u = urlparse(a.endpoint)
    if not wait_port(u.hostname, u.port, 60):
        sys.exit(f"moto did not listen on {u.hostname}:{u.port} within 60 s")
    image_once()
    common = ["--endpoint", a.endpoint, "--region", a.region]
    world = world_create(*common, "--tables", str(a.tables), "--cidr-index", str(a.cidr_index))
    ec2 = boto3.client("ec2", endpoint_url=a.endpoint, region_name=a.region,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    table = world["route_tables"][-1]
    if table != world["route_tables"][0]:
        ec2.associate_route_table(RouteTableId=table, SubnetId=world["subnet_c"])
    world["client_table"] = table
    print(json.dumps(world), flush=True)
    if a.ip_site is not None:
        ip_world = world_create(*common, "--tables", "1", "--cidr-index", str(a.ip_site), "--same-subnet",
                                "--secondary-ip")
        print(json.dumps(ip_world), flush=True)


if __name__ == "__main__":
    main()
