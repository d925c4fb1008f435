#!/usr/bin/env python3
"""Builds a two-member IRIS mirror world in an EC2 emulator (moto) and reads it back.

    world.py create --endpoint http://127.0.0.1:PORT [--tables 2] [--tag irisvip=prod] [--cidr-index N] [--ipv6]
        -> JSON: vpc, CIDR, two members (instance, ENI, MAC, subnet, AZ, private IP) in two
           subnets of two AZs, SourceDestCheck off, the route tables (the main one plus extras).
    world.py routes --endpoint URL --vip 192.168.240.10 rtb-1 rtb-2
        -> JSON: {"rtb-1": {"target": "eni-..", "state": "active"} | null, ...}
    world.py set-route --endpoint URL --vip V --table rtb-1 --eni eni-1   (create or replace)
    world.py delete-route --endpoint URL --vip V --table rtb-1
    world.py gateway-route --endpoint URL --vip V --table rtb-1   (VIP route to a new internet
        gateway of the table's VPC, replacing any; prints {"gateway": "igw-.."})
    world.py edge-table --endpoint URL --vpc vpc-1   (a new route table associated with a new
        internet gateway of the VPC: an edge table; prints {"table": "rtb-..", "gateway": "igw-.."})
    world.py tag --endpoint URL --tag K=V rtb-1 rtb-2   (tags the tables with exactly K=V)

For the private-ip and eip modes (create's output gains keys only with these options):
    world.py create ... --same-subnet    both members in subnet a (AZ a): "b"'s subnet and AZ are a's
    world.py create ... --secondary-ip [IP]   member a holds a secondary private IP (default: the
        subnet's .200): "secondary_ip": {"ip", "eni" (a's), "subnet", "cidr"}
    world.py create ... --eip            allocates an Elastic IP, not associated:
        "eip": {"allocation_id", "public_ip"}
    world.py holders --endpoint URL --ip IP [--vpc vpc-1]   -> {"ip": IP, "holders": ["eni-.."]}
        (every ENI whose private IPv4s include IP, read from all ENIs: moto's own
        addresses.private-ip-address filter sees primary addresses only)
    world.py assign-ip --endpoint URL --eni E --ip IP   E holds IP, as EC2 moves it: first taken
        from any other ENI holding it -> {"eni": E, "ip": IP, "moved_from": ["eni-.."]}
    world.py unassign-ip --endpoint URL --eni E --ip IP   -> {"eni": E, "ip": IP}
    world.py allocate-eip --endpoint URL [--eni E [--private-ip IP]]
        -> {"allocation_id", "public_ip", "association_id" (null when not associated)}
    world.py eip --endpoint URL --allocation-id A
        -> {"allocation_id", "public_ip", "association_id", "eni", "private_ip"} (null when absent;
           straight from moto, "private_ip" is moto's: the ENI's primary, whatever was asked)
    world.py associate-eip --endpoint URL --allocation-id A --eni E [--private-ip IP]
        (reassociates; -> {"association_id"});  world.py disassociate-eip --endpoint URL --allocation-id A

Used by the Rust tests, `make demo`, the lab and the benchmarks, so all build the same world.
"""

import argparse
import ipaddress
import json
import sys

import boto3

REGION = "us-east-1"


def client(endpoint, region=REGION):
    return boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def any_image(ec2):
    # moto lists ~1300 Amazon images: the unfiltered answer alone takes ~2 s, a named one ~30 ms.
    named = ec2.describe_images(Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}])
    images = (named.get("Images") or ec2.describe_images(Owners=["amazon"]).get("Images")
              or ec2.describe_images().get("Images"))
    return images[0]["ImageId"]


def create(args):
    ec2 = client(args.endpoint, args.region)
    n = args.cidr_index
    cidr = f"10.{n}.0.0/16"
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    extra_cidrs = []
    if args.secondary_cidr:
        ec2.associate_vpc_cidr_block(VpcId=vpc, CidrBlock=args.secondary_cidr)
        extra_cidrs.append(args.secondary_cidr)
    ipv6_cidr = None
    if args.ipv6:
        assoc = ec2.associate_vpc_cidr_block(VpcId=vpc, AmazonProvidedIpv6CidrBlock=True)
        ipv6_cidr = assoc["Ipv6CidrBlockAssociation"]["Ipv6CidrBlock"]
    image = any_image(ec2)
    members = {}
    subnets = {}
    for i, (name, az) in enumerate((("a", args.region + "a"), ("b", args.region + "b"), ("c", args.region + "c"))):
        if name == "b" and args.same_subnet:  # private-ip mode: both members in subnet a
            az = args.region + "a"
            subnet = subnets["a"]
        else:
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{n}.{i + 1}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
        subnets[name] = subnet
        if name == "c":  # the client / arbiter subnet: no instance
            members["subnet_c"] = subnet
            continue
        inst = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnet)["Instances"][0]
        ni = inst["NetworkInterfaces"][0]
        ec2.modify_network_interface_attribute(NetworkInterfaceId=ni["NetworkInterfaceId"], SourceDestCheck={"Value": False})
        members[name] = {
            "instance_id": inst["InstanceId"],
            "eni": ni["NetworkInterfaceId"],
            "mac": ni["MacAddress"],
            "subnet": subnet,
            "az": az,
            "private_ip": ni["PrivateIpAddress"],
        }
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]["RouteTableId"]
    tables = [main]
    for _ in range(args.tables - 1):
        tables.append(ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"])
    tagged = []
    if args.tag:
        key, value = args.tag.split("=", 1)
        tagged = tables[: max(1, len(tables) // 2)] if args.tag_some else tables
        ec2.create_tags(Resources=tagged, Tags=[{"Key": key, "Value": value}])
    out = {
        "endpoint": args.endpoint,
        "region": args.region,
        "vpc": vpc,
        "cidr": cidr,
        "extra_cidrs": extra_cidrs,
        "ipv6_cidr": ipv6_cidr,
        "a": members["a"],
        "b": members["b"],
        "subnet_c": members["subnet_c"],
        "route_tables": tables,
        "tagged": tagged,
    }
    if args.secondary_ip is not None:
        a = members["a"]
        cidr = f"10.{n}.1.0/24"
        ip = args.secondary_ip or f"10.{n}.1.200"
        if ip in (members["a"]["private_ip"], members["b"]["private_ip"]):
            raise SystemExit(f"--secondary-ip {ip} is a member's primary address")
        ec2.assign_private_ip_addresses(NetworkInterfaceId=a["eni"], PrivateIpAddresses=[ip])
        out["secondary_ip"] = {"ip": ip, "eni": a["eni"], "subnet": a["subnet"], "cidr": cidr}
    if args.eip:
        eip = ec2.allocate_address(Domain="vpc")
        out["eip"] = {"allocation_id": eip["AllocationId"], "public_ip": eip["PublicIp"]}
    json.dump(out, sys.stdout)
    print()


def all_enis(ec2, vpc=None):
    filters = [{"Name": "vpc-id", "Values": [vpc]}] if vpc else []
    pages = ec2.get_paginator("describe_network_interfaces").paginate(Filters=filters)
    return [e for page in pages for e in page["NetworkInterfaces"]]


def holders_of(ec2, ip, vpc=None):
    return [e["NetworkInterfaceId"] for e in all_enis(ec2, vpc)
            if any(a["PrivateIpAddress"] == ip for a in e.get("PrivateIpAddresses", []))]


def holders(args):
    ec2 = client(args.endpoint, args.region)
    json.dump({"ip": args.ip, "holders": holders_of(ec2, args.ip, args.vpc)}, sys.stdout)
    print()


def assign_ip(args):
    ec2 = client(args.endpoint, args.region)
    moved = [e for e in holders_of(ec2, args.ip) if e != args.eni]
    for old in moved:  # EC2 moves the address; moto alone would leave it on the old ENI too
        ec2.unassign_private_ip_addresses(NetworkInterfaceId=old, PrivateIpAddresses=[args.ip])
    ec2.assign_private_ip_addresses(NetworkInterfaceId=args.eni, PrivateIpAddresses=[args.ip], AllowReassignment=True)
    json.dump({"eni": args.eni, "ip": args.ip, "moved_from": moved}, sys.stdout)
    print()


def unassign_ip(args):
    ec2 = client(args.endpoint, args.region)
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=args.eni, PrivateIpAddresses=[args.ip])
    json.dump({"eni": args.eni, "ip": args.ip}, sys.stdout)
    print()


def associate(ec2, allocation, eni, private_ip=None):
    where = {"AllocationId": allocation, "NetworkInterfaceId": eni, "AllowReassociation": True}
    if private_ip:
        where["PrivateIpAddress"] = private_ip
    return ec2.associate_address(**where)["AssociationId"]


def allocate_eip(args):
    ec2 = client(args.endpoint, args.region)
    eip = ec2.allocate_address(Domain="vpc")
    assoc = associate(ec2, eip["AllocationId"], args.eni, args.private_ip) if args.eni else None
    json.dump({"allocation_id": eip["AllocationId"], "public_ip": eip["PublicIp"], "association_id": assoc}, sys.stdout)
    print()


def eip(args):
    ec2 = client(args.endpoint, args.region)
    a = ec2.describe_addresses(AllocationIds=[args.allocation_id])["Addresses"][0]
    json.dump({"allocation_id": a["AllocationId"], "public_ip": a["PublicIp"],
               "association_id": a.get("AssociationId") or None, "eni": a.get("NetworkInterfaceId") or None,
               "private_ip": a.get("PrivateIpAddress") or None}, sys.stdout)
    print()


def associate_eip(args):
    ec2 = client(args.endpoint, args.region)
    json.dump({"association_id": associate(ec2, args.allocation_id, args.eni, args.private_ip)}, sys.stdout)
    print()


def disassociate_eip(args):
    ec2 = client(args.endpoint, args.region)
    a = ec2.describe_addresses(AllocationIds=[args.allocation_id])["Addresses"][0]
    if a.get("AssociationId"):
        ec2.disassociate_address(AssociationId=a["AssociationId"])
    json.dump({"disassociated": a.get("AssociationId") or None}, sys.stdout)
    print()


def destination(vip):
    """(the describe field, the canonical destination) of a VIP: IPv6 when it has a ':'."""
    if ":" in vip:
        addr = vip.split("/")[0]
        return "DestinationIpv6CidrBlock", f"{ipaddress.IPv6Address(addr).compressed}/128"
    return "DestinationCidrBlock", vip if "/" in vip else vip + "/32"


def routes(args):
    ec2 = client(args.endpoint, args.region)
    field, dest = destination(args.vip)
    seen = {t: None for t in args.tables}
    for t in ec2.describe_route_tables(RouteTableIds=args.tables)["RouteTables"]:
        for r in t.get("Routes", []):
            if r.get(field) == dest:
                seen[t["RouteTableId"]] = {
                    "target": r.get("NetworkInterfaceId") or r.get("InstanceId") or r.get("GatewayId"),
                    "state": r.get("State", "active"),
                }
    json.dump(seen, sys.stdout)
    print()


def set_route(args):
    ec2 = client(args.endpoint, args.region)
    field, dest = destination(args.vip)
    where = {"RouteTableId": args.table, field: dest, "NetworkInterfaceId": args.eni}
    try:
        ec2.replace_route(**where)
    except ec2.exceptions.ClientError:
        ec2.create_route(**where)


def delete_route(args):
    ec2 = client(args.endpoint, args.region)
    dest = args.vip if "/" in args.vip else args.vip + "/32"
    ec2.delete_route(RouteTableId=args.table, DestinationCidrBlock=dest)


def gateway_route(args):
    ec2 = client(args.endpoint, args.region)
    dest = args.vip if "/" in args.vip else args.vip + "/32"
    vpc = ec2.describe_route_tables(RouteTableIds=[args.table])["RouteTables"][0]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    try:
        ec2.delete_route(RouteTableId=args.table, DestinationCidrBlock=dest)
    except ec2.exceptions.ClientError:
        pass
    ec2.create_route(RouteTableId=args.table, DestinationCidrBlock=dest, GatewayId=igw)
    json.dump({"gateway": igw}, sys.stdout)
    print()


def edge_table(args):
    ec2 = client(args.endpoint, args.region)
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=args.vpc)
    table = ec2.create_route_table(VpcId=args.vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, GatewayId=igw)
    json.dump({"table": table, "gateway": igw}, sys.stdout)
    print()


def tag(args):
    ec2 = client(args.endpoint, args.region)
    key, value = args.tag.split("=", 1)
    ec2.create_tags(Resources=args.tables, Tags=[{"Key": key, "Value": value}])
    json.dump({"tagged": args.tables}, sys.stdout)
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("--tables", type=int, default=2)
    c.add_argument("--tag", default=None)
    c.add_argument("--tag-some", action="store_true", help="tag only the first half of the tables")
    c.add_argument("--cidr-index", type=int, default=20)
    c.add_argument("--secondary-cidr", default=None)
    c.add_argument("--ipv6", action="store_true", help="associate an Amazon-provided IPv6 block with the VPC")
    c.add_argument("--same-subnet", action="store_true", help="both members in one subnet (private-ip mode)")
    c.add_argument("--secondary-ip", nargs="?", const="", default=None,
                   help="member a holds this secondary private IP (default: .200 of its subnet)")
    c.add_argument("--eip", action="store_true", help="allocate an Elastic IP (not associated)")
    r = sub.add_parser("routes")
    r.add_argument("--vip", required=True)
    r.add_argument("tables", nargs="+")
    s = sub.add_parser("set-route")
    s.add_argument("--vip", required=True)
    s.add_argument("--table", required=True)
    s.add_argument("--eni", required=True)
    d = sub.add_parser("delete-route")
    d.add_argument("--vip", required=True)
    d.add_argument("--table", required=True)
    g = sub.add_parser("gateway-route")
    g.add_argument("--vip", required=True)
    g.add_argument("--table", required=True)
    e = sub.add_parser("edge-table")
    e.add_argument("--vpc", required=True)
    t = sub.add_parser("tag")
    t.add_argument("--tag", required=True)
    t.add_argument("tables", nargs="+")
    h = sub.add_parser("holders")
    h.add_argument("--ip", required=True)
    h.add_argument("--vpc", default=None)
    ai = sub.add_parser("assign-ip")
    ui = sub.add_parser("unassign-ip")
    for q in (ai, ui):
        q.add_argument("--eni", required=True)
        q.add_argument("--ip", required=True)
    al = sub.add_parser("allocate-eip")
    al.add_argument("--eni", default=None)
    al.add_argument("--private-ip", default=None)
    ei = sub.add_parser("eip")
    ae = sub.add_parser("associate-eip")
    ae.add_argument("--eni", required=True)
    ae.add_argument("--private-ip", default=None)
    de = sub.add_parser("disassociate-eip")
    for q in (ei, ae, de):
        q.add_argument("--allocation-id", required=True)
    for q in (c, r, s, d, g, e, t, h, ai, ui, al, ei, ae, de):
        q.add_argument("--endpoint", required=True)
        q.add_argument("--region", default=REGION)
    args = p.parse_args()
    {"create": create, "routes": routes, "set-route": set_route, "delete-route": delete_route,
     "gateway-route": gateway_route, "edge-table": edge_table, "tag": tag, "holders": holders,
     "assign-ip": assign_ip, "unassign-ip": unassign_ip, "allocate-eip": allocate_eip, "eip": eip,
     "associate-eip": associate_eip, "disassociate-eip": disassociate_eip}[args.cmd](args)


if __name__ == "__main__":
    main()
