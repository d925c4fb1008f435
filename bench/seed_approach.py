#!/usr/bin/env python3
"""The seed approach: the community article's embedded-Python failover, as a fresh process.

Written from the article's description (the recipe irisvip answers), not copied: from
NotifyBecomePrimary, Python reads the instance id and region from instance metadata with IMDSv1
(a plain GET, no token), builds a boto3 session, resource and client, finds the instance's VPC,
and for every route table of that VPC deletes the VIP route, then creates it pointing at the
instance's network_interfaces[0]. In sequence, without timeouts, without verification.

    seed_approach.py [VIP/32]

The benchmark runs it with boto3 already installed (the article pip-installs it at failover time
when it is missing; that cost is not counted here).
"""

import sys
import urllib.request

import boto3

VIP = sys.argv[1] if len(sys.argv) > 1 else "192.168.240.10/32"
METADATA = "http://169.254.169.254/latest/meta-data/"


def metadata(path):
    # IMDSv1: a plain GET, no token.
    with urllib.request.urlopen(METADATA + path) as r:
        return r.read().decode()


def main():
    instance_id = metadata("instance-id")
    region = metadata("placement/region")

    session = boto3.Session(region_name=region)
    ec2 = session.resource("ec2")
    client = session.client("ec2")

    instance = ec2.Instance(instance_id)
    vpc = ec2.Vpc(instance.vpc_id)
    eni_id = instance.network_interfaces[0].id

    for table in vpc.route_tables.all():
        try:
            client.delete_route(RouteTableId=table.id, DestinationCidrBlock=VIP)
        except Exception:
            pass  # no route yet
        client.create_route(RouteTableId=table.id, DestinationCidrBlock=VIP, NetworkInterfaceId=eni_id)
        print(f"{table.id} -> {eni_id}")


if __name__ == "__main__":
    main()
