"""The shared world every contender runs against: one moto, the IMDS stand-ins, route resets.

Runs inside the bench namespace (see netns.py): moto and member B's IMDS on 127.0.0.1, member
A's IMDS on 169.254.169.254:80, where the AWS SDKs, curl, the aws CLI and the resource agent
look for it by default. Contenders claim as A unless they say otherwise.
"""

import json
import os
import subprocess
import time
import urllib.request

import boto3

from common import HERE, IMDS_ADDR, MAC, PY, REGION, SUPPORT, VIP_CIDR, free_port, log, release, wait_port


class Moto:
    def __init__(self, procs, workdir, lean=False):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = procs.start([PY, os.path.join(HERE, "motolog.py"), "-H", "127.0.0.1", "-p", str(self.port),
                                 *(["--lean"] if lean else [])],
                                stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(workdir, "moto-lean.log" if lean else "moto.log"), "w"))
        wait_port("127.0.0.1", self.port, "moto")
        self.ec2 = boto3.client("ec2", endpoint_url=self.endpoint, region_name=REGION,
                                aws_access_key_id="bench", aws_secret_access_key="bench")

    def requests(self, since):
        """moto's log of the EC2 requests answered since `since` (all but the poller's)."""
        with urllib.request.urlopen(f"{self.endpoint}/_bench/requests?since={since:.6f}", timeout=60) as r:
            return json.loads(r.read())


class World:
    """A two-member VPC with `tables` route tables, its VIP route pointing at B to start with.

    `flags` go to tests/support/world.py create: `--same-subnet --secondary-ip --eip` make a world
    where the address modes can run too (both members in one subnet, a secondary private IP on
    A's ENI, an Elastic IP not associated)."""

    def __init__(self, procs, moto, tables, cidr_index, workdir, flags=()):
        self.procs, self.moto, self.tables_n = procs, moto, tables
        out = subprocess.run([PY, os.path.join(SUPPORT, "world.py"), "create", "--endpoint", moto.endpoint,
                              "--tables", str(tables), "--cidr-index", str(cidr_index), *flags],
                             check=True, capture_output=True, text=True).stdout
        self.w = json.loads(out)
        self.tables = self.w["route_tables"]
        self.eni = {"A": self.w["a"]["eni"], "B": self.w["b"]["eni"]}
        self.letter = {v: k for k, v in self.eni.items()}
        for t in self.tables:
            moto.ec2.create_route(RouteTableId=t, DestinationCidrBlock=VIP_CIDR, NetworkInterfaceId=self.eni["B"])
        self.imds = {}
        self.imds_proc = []
        for name, host, port in (("A", IMDS_ADDR, 80), ("B", "127.0.0.1", 0)):
            m = self.w[name.lower()]
            p = procs.start([PY, os.path.join(SUPPORT, "imds.py"), "--host", host, "--port", str(port),
                             "--instance-id", m["instance_id"], "--mac", MAC[name], "--eni", m["eni"],
                             "--vpc", self.w["vpc"], "--subnet", m["subnet"], "--region", REGION, "--az", m["az"],
                             "--local-ipv4", m["private_ip"], "--credentials", "--allow-imdsv1"],
                            stdout=subprocess.PIPE, stderr=open(os.path.join(workdir, f"imds-{name}.log"), "w"),
                            text=True)
            bound = int(p.stdout.readline().split()[1])
            self.imds[name] = f"http://{host}:{bound}" if bound != 80 else f"http://{host}"
            self.imds_proc.append(p)

    def routes(self):
        """Letter of the holder per table ('-' none, '?' other), read with DescribeRouteTables."""
        seen = {t: "-" for t in self.tables}
        for t in self.moto.ec2.describe_route_tables(RouteTableIds=self.tables)["RouteTables"]:
            for r in t.get("Routes", []):
                if r.get("DestinationCidrBlock") == VIP_CIDR:
                    seen[t["RouteTableId"]] = self.letter.get(r.get("NetworkInterfaceId"), "?")
        return "".join(seen[t] for t in self.tables)

    # -- the address modes (worlds made with --secondary-ip / --eip) ---------------------------

    def holder(self, resource):
        """Who holds `resource` at moto: "route" -> the routes' letters (routes()); "private-ip"
        -> the letters of the ENIs holding the secondary address ('?' another ENI, '-' none);
        "eip" -> the letter of the ENI the Elastic IP is associated with ('-' none)."""
        if resource == "route":
            return self.routes()
        if resource == "private-ip":
            got = self.ip_holders()
            return "".join(sorted(self.letter.get(e, "?") for e in got)) or "-"
        if resource == "eip":
            a = self.moto.ec2.describe_addresses(AllocationIds=[self.w["eip"]["allocation_id"]])["Addresses"][0]
            eni = a.get("NetworkInterfaceId") or None
            return self.letter.get(eni, "?") if eni else "-"
        raise ValueError(resource)

    def ip_holders(self):
        """The ENIs of the VPC holding the secondary address (moto's filter sees primaries only)."""
        ip = self.w["secondary_ip"]["ip"]
        enis = self.moto.ec2.describe_network_interfaces(
            Filters=[{"Name": "vpc-id", "Values": [self.w["vpc"]]}])["NetworkInterfaces"]
        return [e["NetworkInterfaceId"] for e in enis
                if any(a["PrivateIpAddress"] == ip for a in e.get("PrivateIpAddresses", []))]

    def reset(self, resource, holder, floor=None):
        """Puts `resource` at `holder` straight at moto (untimed), as EC2 would leave it: a private
        IP on that ENI alone, the Elastic IP associated with its primary address."""
        if resource == "route":
            return reset_to(self, floor, holder)
        ec2, eni = self.moto.ec2, self.eni[holder]
        if resource == "private-ip":
            ip = self.w["secondary_ip"]["ip"]
            held = self.ip_holders()
            for old in held:
                if old != eni:
                    ec2.unassign_private_ip_addresses(NetworkInterfaceId=old, PrivateIpAddresses=[ip])
            if eni not in held:
                ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=[ip],
                                                AllowReassignment=True)
        elif resource == "eip":
            alloc = self.w["eip"]["allocation_id"]
            a = ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
            if a.get("AssociationId"):  # moto's reassociation would leave the old ENI showing it
                ec2.disassociate_address(AssociationId=a["AssociationId"])
            ec2.associate_address(AllocationId=alloc, NetworkInterfaceId=eni, AllowReassociation=True)
        seen = self.holder(resource)
        if seen != holder:
            raise RuntimeError(f"could not reset the {resource} to {holder}: {seen}")

    def stop(self):
        for p in self.imds_proc:
            self.procs.stop(p)


class Floor:
    """examples/floor: ReplaceRoute on every table at once over warm connections.

    The floor contender, and the tool that puts the route back at the run's starting holder
    between runs (outside every timed window).
    """

    def __init__(self, procs, world, workdir, endpoint=None, tables=None, env=None):
        """By default straight at moto over every table of the world; the model phase gives the
        proxy's HTTPS endpoint, a share of the tables and an environment with SSL_CERT_FILE."""
        self.world = world
        argv = [release("examples", "floor"), "--endpoint", endpoint or world.moto.endpoint, "--region", REGION,
                "--vip", VIP_CIDR, "--tables", ",".join(tables or world.tables), "--warmup", world.eni["B"]]
        self.p = procs.start(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=open(os.path.join(workdir, "floor.log"), "a"), text=True, env=env)
        ready = json.loads(self.p.stdout.readline() or "{}")
        if not ready.get("ok"):
            raise RuntimeError(f"floor did not start: {ready}")
        self.procs = procs

    def replace(self, holder):
        """Returns (t0, reply): t0 just before the command is written."""
        t0 = self.send(holder)
        return t0, self.receive()

    def send(self, holder):
        """Starts a switch to `holder` without waiting for it; returns the time just before."""
        t0 = time.monotonic()
        self.p.stdin.write(f"replace {self.world.eni[holder]}\n")
        self.p.stdin.flush()
        return t0

    def receive(self):
        """The answer to the last `send`: {"ok", "ms" (the floor's own timing), "error"}."""
        return json.loads(self.p.stdout.readline() or '{"ok": false, "error": "floor exited"}')

    def stop(self):
        self.procs.stop(self.p)


class Poller:
    def __init__(self, procs, world, path):
        self.path = path
        holders = ",".join(f"{eni}={k}" for k, eni in world.eni.items())
        self.p = procs.start([PY, os.path.join(HERE, "poller.py"), "--endpoint", world.moto.endpoint,
                              "--vip", VIP_CIDR, "--tables", ",".join(world.tables), "--holders", holders,
                              "--out", path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.p.stdout.readline().strip() != "ready":
            raise RuntimeError("poller did not start")
        self.procs = procs

    def on(self):
        self.p.stdin.write("on\n")
        self.p.stdin.flush()

    def off(self):
        """Stops polling; returns the records [(t_send, t_recv, states)]."""
        self.p.stdin.write("off\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().split()
        if not line or line[0] != "off":
            log(f"poller answered {line!r}")
        records = []
        with open(self.path) as f:
            for row in f:
                a, b, s = row.split()
                records.append((float(a), float(b), s))
        return records

    def stop(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
        except OSError:
            pass
        self.procs.stop(self.p)


def reset_to(world, floor, holder):
    """Points every table at `holder` (untimed), with the floor's warm client; repairs missing routes."""
    want = holder * len(world.tables)
    _, reply = floor.replace(holder)
    if not reply.get("ok"):
        for t in world.tables:
            try:
                world.moto.ec2.replace_route(RouteTableId=t, DestinationCidrBlock="192.168.240.10/32",
                                             NetworkInterfaceId=world.eni[holder])
            except Exception:
                world.moto.ec2.create_route(RouteTableId=t, DestinationCidrBlock="192.168.240.10/32",
                                            NetworkInterfaceId=world.eni[holder])
    seen = world.routes()
    if seen != want:
        raise RuntimeError(f"could not reset the routes to {holder}: {seen}")
