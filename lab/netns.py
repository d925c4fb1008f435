"""Network namespaces of one lab run: probe, build the topology, flip links, tear down, sweep.

Everything the lab sends travels between these namespaces; the root namespace gets no address
and no route, so no lab packet can leave the machine.

    client (10.N.3.10) --- to-c  \
    member-a (eth0 10.N.1.x) --- to-a -- vpc router (10.N.{1,2,3}.1, moto, route sync)
    member-b (eth0 10.N.2.x) --- to-b  /
    ip-a (ens5 10.M.1.x) ------- to-pa -/  the private-ip site (scenario 6, only when asked):
    ip-b (ens5 10.M.1.y) ------- to-pb /   both members in one subnet, router 10.M.1.1 on both links

Names are PREFIX + "<pid>-" + role, the pid being the lab process that made them, so a later
run can tell a crashed run's namespaces (pid gone) from a live concurrent run's (pid alive).
"""

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field

PREFIX = "irisvip-lab-"
ROLES = ("vpc", "a", "b", "c")
VIP = "192.168.240.10"
IMDS_ADDR = "169.254.169.254"
# Members' first NIC, as on current Nitro AMIs; the VIP's label on it. The library is given no
# interface= and must find this label from the ENI's MAC in instance metadata.
MEMBER_DEV = "ens5"
VIP_LABEL = f"{MEMBER_DEV}:1"
SUBNET = {"a": 1, "b": 2, "c": 3}  # third octet of each role's subnet, as world.py numbers them
# The private-ip site's members: both in subnet 1 of their own world (world.py --same-subnet).
IP_ROLES = {"pa": "ip-a", "pb": "ip-b"}


class NetnsUnavailable(Exception):
    """This machine (or this user) cannot create network namespaces."""


def ip(*args, check=True):
    """One iproute2 command; failures raise with ip's own message."""
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip() or r.returncode}")
    return r.stdout


def sysctl(ns, *settings):
    """Set sysctls inside a namespace: net.* is per namespace, so it is written from inside it
    (through /proc/sys, so no procps is needed)."""
    script = "; ".join(f"echo '{s.split('=', 1)[1]}' > /proc/sys/{s.split('=', 1)[0].replace('.', '/')}" for s in settings)
    subprocess.run(["ip", "netns", "exec", ns, "sh", "-ec", script], check=True)


def probe():
    """Raise NetnsUnavailable with a one-line reason unless `ip netns add` works here."""
    if shutil.which("ip") is None:
        raise NetnsUnavailable("the `ip` command (iproute2) is not installed")
    if os.geteuid() != 0:
        # CAP_NET_ADMIN alone is not enough either: `ip netns add` also mounts under /run/netns.
        raise NetnsUnavailable(f"it needs root (running as uid {os.geteuid()})")
    name = f"{PREFIX}{os.getpid()}-probe"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        raise NetnsUnavailable(f"`ip netns add` failed: {r.stderr.strip() or 'exit ' + str(r.returncode)}")
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _list():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_inside(ns):
    """Kill what still runs inside a namespace: deleting a namespace does not stop its processes."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    for pid in (int(p) for p in out.split() if p.isdigit()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def sweep_stale():
    """Delete the namespaces (and their processes) of earlier lab runs whose process is gone."""
    removed = []
    for ns in _list():
        m = re.match(re.escape(PREFIX) + r"(\d+)-", ns)
        if not m or pid_alive(int(m.group(1))):
            continue
        _kill_inside(ns)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        removed.append(ns)
    return removed


@dataclass
class Topology:
    """Names and addresses of one run's namespaces. Member addresses come from the moto world."""

    n: int  # the world's CIDR index: VPC 10.n.0.0/16, subnets 10.n.{1,2,3}.0/24
    ns: dict = field(default_factory=dict)  # role -> namespace name
    member_ip: dict = field(default_factory=dict)  # "a"/"b" -> private IP
    created: list = field(default_factory=list)
    gws: dict = field(default_factory=dict)  # role -> router address, for the private-ip site's roles

    def gw(self, role):
        """The router's address in a role's subnet (AWS's VPC router is .1 as well)."""
        return self.gws.get(role) or f"10.{self.n}.{SUBNET[role]}.1"

    @property
    def client_ip(self):
        return f"10.{self.n}.3.10"


def create(n):
    """Namespaces, veth pairs to the router, router addresses and forwarding. Members get their
    addresses later (configure_member), once moto has told which private IPs they own."""
    topo = Topology(n=n)
    base = f"{PREFIX}{os.getpid()}-"
    try:
        for role in ROLES:
            name = base + {"vpc": "vpc", "a": "member-a", "b": "member-b", "c": "client"}[role]
            ip("netns", "add", name)
            topo.created.append(name)
            topo.ns[role] = name
            ip("-n", name, "link", "set", "lo", "up")
        vpc = topo.ns["vpc"]
        for role in ("a", "b", "c"):
            # Created inside the router namespace with the peer moved straight into the other one:
            # the root namespace never holds either end, so no name can clash with the host's.
            ip("-n", vpc, "link", "add", f"to-{role}", "type", "veth", "peer", "name", dev(role), "netns", topo.ns[role])
            ip("-n", vpc, "addr", "add", f"{topo.gw(role)}/24", "dev", f"to-{role}")
            ip("-n", vpc, "link", "set", f"to-{role}", "up")
        # Forwarding on; rp_filter off: a member answers from the VIP, whose route may point at the
        # other member at that moment (the VPC equivalent is SourceDestCheck=false on the ENIs).
        # While the VIP route is `unreachable`, the kernel answers the first few packets with ICMP
        # host-unreachable and then, rate-limited by the host-wide net.ipv4.route.error_cost (left
        # alone: it is not per namespace), drops them silently, as a VPC drops packets without a
        # route: most attempts then end in a timeout rather than an error.
        sysctl(vpc, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
               *[f"net.ipv4.conf.to-{r}.rp_filter=0" for r in ("a", "b", "c")])
        c = topo.ns["c"]
        ip("-n", c, "addr", "add", f"{topo.client_ip}/24", "dev", "eth0")
        ip("-n", c, "link", "set", "eth0", "up")
        ip("-n", c, "route", "add", "default", "via", topo.gw("c"))
        # The client opens ~150 short connections a second; let it reuse TIME_WAIT ports.
        sysctl(c, "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=10000 65000")
        return topo
    except BaseException:
        destroy(topo)
        raise


def add_ip_site(topo, m):
    """The private-ip site's two member namespaces, both in subnet 10.m.1.0/24, each on its own
    veth to the router (a VPC has no shared L2 either: it delivers to ENIs). The router holds
    10.m.1.1 on both links and reaches each member's primary address by a /32 route
    (connect_ip_member); the address that moves gets its /32 route from the data plane."""
    vpc = topo.ns["vpc"]
    base = f"{PREFIX}{os.getpid()}-"
    for role, suffix in IP_ROLES.items():
        name = base + suffix
        ip("netns", "add", name)
        topo.created.append(name)
        topo.ns[role] = name
        topo.gws[role] = f"10.{m}.1.1"
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", vpc, "link", "add", f"to-{role}", "type", "veth", "peer", "name", MEMBER_DEV, "netns", name)
        ip("-n", vpc, "addr", "add", f"{topo.gw(role)}/32", "dev", f"to-{role}")
        ip("-n", vpc, "link", "set", f"to-{role}", "up")
    sysctl(vpc, *[f"net.ipv4.conf.to-{r}.rp_filter=0" for r in IP_ROLES])


def connect_ip_member(topo, role, private_ip):
    """The router's way to a private-ip member's primary address: its own link."""
    ip("-n", topo.ns["vpc"], "route", "replace", f"{private_ip}/32", "dev", f"to-{role}")


def dev(role):
    """The NIC's name: members are current Nitro instances (Amazon Linux 2023, Ubuntu), whose first
    device is ens5, not eth0; the library finds it by the ENI's MAC. The client is just a host."""
    return MEMBER_DEV if role in ("a", "b") else "eth0"


def configure_member(topo, role, private_ip, mac, vip=VIP):
    """A member as an EC2 instance sees itself: ens5 with its ENI's MAC and private IP, the VIP
    on label ens5:1 (what IRIS's mirror VIP setup leaves), and 169.254.169.254 on lo where its
    IMDSv2 stand-in listens, so the library uses the real metadata address. In the private-ip
    site the VIP is the subnet's secondary address, carried the same way."""
    ns = topo.ns[role]
    topo.member_ip[role] = private_ip
    ip("-n", ns, "link", "set", MEMBER_DEV, "address", mac)
    ip("-n", ns, "addr", "add", f"{private_ip}/24", "dev", MEMBER_DEV)
    ip("-n", ns, "addr", "add", f"{vip}/32", "dev", MEMBER_DEV, "label", VIP_LABEL)
    ip("-n", ns, "addr", "add", f"{IMDS_ADDR}/32", "dev", "lo")
    set_link(topo, role, True)


def set_link(topo, role, up):
    """A member's NIC on or off. Down takes the default route with it, so up restores it."""
    ns = topo.ns[role]
    ip("-n", ns, "link", "set", MEMBER_DEV, "up" if up else "down")
    if up:
        ip("-n", ns, "route", "replace", "default", "via", topo.gw(role))


def destroy(topo):
    """Remove this run's namespaces; whatever still runs inside is killed first. Idempotent."""
    for ns in reversed(topo.created):
        _kill_inside(ns)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    topo.created.clear()
