"""The lab's cast: moto in the router, the world it holds, two members (IMDSv2, the VIP service,
an IRIS-like process with the library loaded), the data-plane sync loop and the client.

Lab.start() brings it all up in order; Lab.close() takes it all down and is safe to call twice
and from any exit path. Members die through link_down() and kill_processes(), and come back
through revive().

With ip_site=True (scenario 6) a second cast comes up beside it, the private-ip site (IpSite):
its own world in moto (both members in one subnet, the VIP a secondary private IP of it), two
more member namespaces, the EC2 model (faultproxy.py) between them and moto, a data plane that
follows who holds the address, and its own client and recorder. Only one site's traffic runs
at a time (Lab.focus): the other's client and data plane are paused.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import netns
from procs import Procs
from recorder import Recorder

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
INSIDE = os.path.join(HERE, "inside")
SUPPORT = os.path.join(REPO, "tests", "support")
MOTO_PORT = 5000  # inside the router's own namespace: always free there
SERVICE_PORT = 1972  # the superserver's port; any TCP service behaves the same
EC2_MODEL_PORT = 5001  # private-ip site: the relay to the EC2 model, on the router's address there
IP_CIDR_INDEX = 21  # private-ip site: VPC 10.21.0.0/16, both members in 10.21.1.0/24
# The EC2 model as the lab uses it: EC2's semantics for private IPs (a reassigned address leaves
# its old ENI; the private-ip filter sees secondary addresses), no throttling (the data plane's
# polls are not API calls in a real VPC), no eventual consistency (reads show writes at once, as
# moto's route tables do for the route scenarios).
EC2_MODEL = {"throttle": False, "consistency": False}


def child_python():
    """The venv interpreter (boto3, moto) for programs run inside namespaces."""
    return os.environ.get("IRISVIP_PYTHON") or sys.executable


def default_zfhost():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    return os.path.join(target, "release", "examples", "zfhost")


def sweep_stale_logs():
    """Log directories of crashed runs (named like their namespaces, by the lab's pid)."""
    tmp = tempfile.gettempdir()
    for d in os.listdir(tmp):
        m = re.match(re.escape(netns.PREFIX) + r"(\d+)-", d)
        if m and not netns.pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(tmp, d), ignore_errors=True)


class Member:
    """One mirror member: its namespace, identity from the moto world, and its processes."""

    def __init__(self, lab, role, ident, world=None, rec=None, name=None, config=None, vip=netns.VIP):
        self.lab = lab
        self.role = role  # "a" / "b" (private-ip site: "pa" / "pb")
        self.name = name or role.upper()  # what the service answers and the reports show
        self.ns = lab.topo.ns[role]
        self.ident = ident  # world.py's member: instance_id, eni, mac, subnet, az, private_ip
        self.world = world or lab.world
        self.rec = rec or lab.rec  # where this member's life and calls are marked
        self.vip = vip
        # The endpoint is the one override: EC2 is reached at the router's address in this
        # member's subnet, as through a VPC interface endpoint. Everything else (VIP from ens5:1,
        # ENI, region, credentials) the library finds itself, through IMDSv2.
        self.config = config or f"endpoint=http://{lab.topo.gw(role)}:{MOTO_PORT}"
        self.imds = self.service = self.host = None
        self.host_calls = 0
        self.alive = False

    def start_imds(self, wait=True):
        w, m = self.world, self.ident
        self.imds = self.lab.procs.start(
            f"imds-{self.role}",
            [child_python(), "-u", os.path.join(SUPPORT, "imds.py"), "--host", netns.IMDS_ADDR, "--port", "80",
             "--instance-id", m["instance_id"], "--mac", m["mac"], "--eni", m["eni"], "--vpc", w["vpc"],
             "--subnet", m["subnet"], "--region", w["region"], "--az", m["az"], "--local-ipv4", m["private_ip"],
             "--credentials"],
            ns=self.ns)
        if wait:
            self.imds.wait_for("PORT", 20)

    def start_service(self, wait=True):
        self.service = self.lab.procs.start(
            f"service-{self.role}",
            [child_python(), "-u", os.path.join(INSIDE, "vip_service.py"), "--bind", self.vip,
             "--port", str(SERVICE_PORT), "--name", self.name],
            ns=self.ns)
        if wait:
            self.service.wait_for("READY", 20)

    def start_host(self):
        """A fresh IRIS-like process: zfhost loads libirisvip.so as $ZF(-4,1) does and then
        takes one call per stdin line, as NotifyBecomePrimary would make them."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.host = self.lab.procs.start(f"zfhost-{self.role}", [self.lab.zfhost, "-"], ns=self.ns, env=env, stdin=True)
        line, _ = self.host.next_line(20)
        if line is None:
            raise RuntimeError(f"zfhost in {self.ns} exited at load; see {self.lab.log_dir}/zfhost-{self.role}.stderr")
        self.load = json.loads(line)
        self.host_calls = 0

    def call(self, entry, timeout=20.0):
        """One $ZF call. Returns times, the host's line and the library's parsed result."""
        return self.finish_call(self.start_call(entry), timeout)

    def start_call(self, entry):
        """Send the call and return at once (the lab may act while the library works)."""
        cold = self.host_calls == 0
        self.host_calls += 1
        t_sent = time.monotonic()
        self.host.send(f"call\t{entry}\t{self.config}\n")
        return {"entry": entry, "t_sent": t_sent, "cold": cold}

    def finish_call(self, pending, timeout=20.0):
        line, t_done = self.host.next_line(timeout)
        if line is None:
            raise RuntimeError(f"zfhost of {self.name} died during {pending['entry']}")
        host = json.loads(line)
        result = json.loads(host["output"]) if "output" in host else {"ok": False, "error": host.get("error")}
        return {**pending, "t_done": t_done, "host_ms": host.get("ms"), "threads": host.get("threads_after"),
                "result": result}


class Lab:
    def __init__(self, zfhost=None, sync_ms=5.0, tables=2, cidr_index=20, client_opts=None, keep_logs=False,
                 ip_site=False):
        self.zfhost = zfhost or default_zfhost()
        self.want_ip_site = ip_site
        self.ip = None  # the private-ip site, once started
        self.traffic_on = False  # the route site's client and sync loop run (not paused)
        self.sync_ms = sync_ms
        self.tables = tables
        self.cidr_index = cidr_index
        self.client_opts = client_opts or {}
        self.keep_logs = keep_logs
        self.log_dir = tempfile.mkdtemp(prefix=f"{netns.PREFIX}{os.getpid()}-")
        self.procs = Procs(self.log_dir)
        self.rec = Recorder()
        self.topo = None
        self.world = None
        self.members = {}
        self.closed = False

    # -- bring-up -------------------------------------------------------------------------
    def start(self, say=print):
        if not os.access(self.zfhost, os.X_OK):
            raise RuntimeError(f"{self.zfhost} is missing: build it first (make build)")
        stale = netns.sweep_stale()
        if stale:
            say(f"removed {len(stale)} namespace(s) left by an earlier crashed run: {', '.join(stale)}")
        sweep_stale_logs()
        self.topo = netns.create(self.cidr_index)
        if self.want_ip_site:
            netns.add_ip_site(self.topo, IP_CIDR_INDEX)
        vpc = self.topo.ns["vpc"]
        py = child_python()
        self.procs.start("moto", [os.path.join(os.path.dirname(py), "moto_server"), "-H", "0.0.0.0", "-p", str(MOTO_PORT)],
                         ns=vpc)
        local = f"http://127.0.0.1:{MOTO_PORT}"
        if self.want_ip_site:  # up while moto starts; it has nothing to forward before the world exists
            self.ip = IpSite(self)
            self.ip.start_model(local)
        setup = self.procs.start("world", [py, "-u", os.path.join(INSIDE, "world_setup.py"), "--endpoint", local,
                                           "--tables", str(self.tables), "--cidr-index", str(self.cidr_index)]
                                 + (["--ip-site", str(IP_CIDR_INDEX)] if self.want_ip_site else []), ns=vpc)
        line, _ = setup.next_line(90)
        if not line:
            raise RuntimeError(f"world setup failed; see {self.log_dir}/world.stderr")
        self.world = json.loads(line)
        if self.ip is not None:
            line, _ = setup.next_line(30)
            if not line:
                raise RuntimeError(f"world setup failed (private-ip site); see {self.log_dir}/world.stderr")
            self.ip.start_members(json.loads(line))
        for role in ("a", "b"):
            m = self.world[role]
            netns.configure_member(self.topo, role, m["private_ip"], m["mac"])
            self.members[role] = Member(self, role, m)
        for mem in self.members.values():  # both members' Python programs start side by side
            mem.start_imds(wait=False)
            mem.start_service(wait=False)
        for mem in self.members.values():
            mem.imds.wait_for("PORT", 20)
            mem.service.wait_for("READY", 20)
            mem.start_host()
            mem.alive = True
        sync_args = [py, "-u", os.path.join(INSIDE, "route_sync.py"), "--endpoint", local,
                     "--table", self.world["client_table"], "--vip", netns.VIP, "--interval-ms", str(self.sync_ms),
                     "--region", self.world["region"]]
        for mem in self.members.values():
            sync_args += ["--member", f"{mem.name}={mem.ident['eni']}={mem.ident['private_ip']}"]
        self.sync = self.procs.start("sync", sync_args, ns=vpc, on_line=self.rec.on_sync)
        self._wait(lambda: self.rec.routes, 20, "the route sync loop did not start")
        client_args = [py, "-u", os.path.join(INSIDE, "client.py"), "--vip", netns.VIP, "--port", str(SERVICE_PORT)]
        for k, v in self.client_opts.items():
            client_args += [f"--{k.replace('_', '-')}", str(v)]
        self.client = self.procs.start("client", client_args, ns=self.topo.ns["c"], on_line=self.rec.on_client)
        self._wait(lambda: self.rec.client_ready, 20, "the client did not start")
        self.traffic_on = True
        if self.ip is not None:
            self.ip.wait_members()

    def focus(self, ip_site):
        """Let one site's traffic run (the private-ip site's is started the first time) and pause
        the other's: two clients and two data planes polling one moto would slow both sites."""
        if ip_site:
            if self.traffic_on:
                for child in (self.client, self.sync):
                    child.p.send_signal(signal.SIGUSR1)
                self.traffic_on = False
            self.ip.run_traffic()
        else:
            if self.ip is not None:
                self.ip.pause_traffic()
            if not self.traffic_on:
                for child in (self.client, self.sync):
                    child.p.send_signal(signal.SIGUSR2)
                self.traffic_on = True

    def rec_of(self, run):
        """The recorder that holds a run's samples, routes and marks."""
        return self.ip.rec if run.get("site") == "private-ip" and self.ip is not None else self.rec

    def _wait(self, cond, timeout, message):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{message} (logs: {self.log_dir})")
            time.sleep(0.01)

    # -- member life and death ------------------------------------------------------------
    def link_down(self, mem):
        """The member's machine dies, as seen from the network: its NIC goes dark, so nothing it
        does from now on (not even a RST from its dying processes) reaches anyone."""
        t = time.monotonic()
        netns.set_link(self.topo, mem.role, False)
        # Marked when `ip link` has returned: from then on A is certainly unreachable.
        mem.rec.mark("link down", mem.name, ip_ms=round((time.monotonic() - t) * 1000.0, 1))
        mem.alive = False

    def kill_processes(self, mem):
        """...and its service and its IRIS process die with it."""
        self.procs.stop(mem.service, sig=signal.SIGKILL)
        self.procs.stop(mem.host, sig=signal.SIGKILL)
        mem.rec.mark("service + IRIS process killed", mem.name)

    def revive(self, mem, setup=False):
        """The member's machine is back: NIC up, service restarted, a fresh IRIS process (so its
        first library call is a cold one, as after a real restart). Its IMDS never went away."""
        netns.set_link(self.topo, mem.role, True)
        mem.start_service()
        mem.start_host()
        mem.alive = True
        mem.rec.mark("revived", mem.name, setup=setup)

    def restart_host(self, mem):
        """A new IRIS process on a live member (the library loads cold again)."""
        self.procs.stop(mem.host)
        mem.start_host()

    # -- tear-down ------------------------------------------------------------------------
    def stop_traffic(self):
        """Stop the client, then the sync loop, whose last line (its poll statistics) is read
        before this returns."""
        for child in (getattr(self, "client", None), getattr(self, "sync", None)):
            if child is not None:
                self.procs.stop(child)
        if self.ip is not None:
            for child in (self.ip.client, self.ip.sync):
                if child is not None:
                    self.procs.stop(child)

    def close(self):
        """Stop every process, then delete the namespaces. Idempotent; safe from any exit path."""
        if self.closed:
            return
        self.closed = True
        try:
            self.procs.stop_all()  # the sync loop prints its stats on SIGTERM, read before EOF
        finally:
            if self.topo is not None:
                netns.destroy(self.topo)
            if not self.keep_logs:
                shutil.rmtree(self.log_dir, ignore_errors=True)
            else:  # renamed out of the stale-run sweep's reach
                kept = self.log_dir.replace(netns.PREFIX, netns.PREFIX + "logs-", 1)
                os.rename(self.log_dir, kept)
                self.log_dir = kept


class IpSite:
    """Scenario 6's cast: a mirror whose VIP is a secondary private IP of the one subnet both
    members are in (mode=private-ip). The members reach EC2 through the EC2 model
    (tests/support/faultproxy.py, via relay.py), and so does the data plane, which routes the
    address to whichever ENI holds it: moto alone would leave a reassigned address on the old
    ENI as well, and its address filter ignores secondary addresses."""

    def __init__(self, lab):
        self.lab = lab
        self.rec = Recorder()
        self.world = None
        self.vip = None
        self.members = {}
        self.proxy_port = None
        self.client = self.sync = None
        self.traffic_on = False

    def start_model(self, moto_url):
        """The EC2 model in front of moto, on the router's loopback (started, not waited for)."""
        self.proxy = self.lab.procs.start("ec2-model", [child_python(), "-u", os.path.join(SUPPORT, "faultproxy.py"),
                                                        "--upstream", moto_url, "--model", json.dumps(EC2_MODEL)],
                                          ns=self.lab.topo.ns["vpc"])

    def start_members(self, world):
        """The relay to the model; addresses, IMDS and the VIP service of both members (not waited
        for: wait_members)."""
        lab = self.lab
        self.proxy_port = int(self.proxy.wait_for("PORT", 20).split()[1])
        self.model_url = f"http://127.0.0.1:{self.proxy_port}"
        self.relay = lab.procs.start("ec2-relay", [child_python(), "-u", os.path.join(INSIDE, "relay.py"), "--listen",
                                                   lab.topo.gw("pa"), "--port", str(EC2_MODEL_PORT),
                                                   "--to", f"127.0.0.1:{self.proxy_port}"], ns=lab.topo.ns["vpc"])
        self.world = world
        self.vip = world["secondary_ip"]["ip"]
        for role, key in (("pa", "a"), ("pb", "b")):
            m = world[key]
            netns.configure_member(lab.topo, role, m["private_ip"], m["mac"], vip=self.vip)
            netns.connect_ip_member(lab.topo, role, m["private_ip"])
            mem = Member(lab, role, m, world=world, rec=self.rec, name=key.upper(), vip=self.vip,
                         config=f"endpoint=http://{lab.topo.gw(role)}:{EC2_MODEL_PORT};mode=private-ip")
            self.members[key] = mem
            mem.start_imds(wait=False)
            mem.start_service(wait=False)

    def wait_members(self):
        self.relay.wait_for("READY", 20)
        for mem in self.members.values():
            mem.imds.wait_for("PORT", 20)
            mem.service.wait_for("READY", 20)
            mem.start_host()
            mem.alive = True

    def run_traffic(self):
        """Start (the first time) or resume this site's data plane and client."""
        if self.client is not None:
            if not self.traffic_on:
                for child in (self.client, self.sync):
                    child.p.send_signal(signal.SIGUSR2)
                self.traffic_on = True
            return
        lab, vpc, py = self.lab, self.lab.topo.ns["vpc"], child_python()
        sync_args = [py, "-u", os.path.join(INSIDE, "route_sync.py"), "--endpoint", self.model_url,
                     "--address", self.vip, "--vpc", self.world["vpc"], "--vip", self.vip,
                     "--interval-ms", str(lab.sync_ms), "--region", self.world["region"]]
        for mem in self.members.values():
            sync_args += ["--member", f"{mem.name}={mem.ident['eni']}={mem.ident['private_ip']}"]
        self.sync = lab.procs.start("sync-ip", sync_args, ns=vpc, on_line=self.rec.on_sync)
        client_args = [py, "-u", os.path.join(INSIDE, "client.py"), "--vip", self.vip, "--port", str(SERVICE_PORT)]
        for k, v in lab.client_opts.items():
            client_args += [f"--{k.replace('_', '-')}", str(v)]
        self.client = lab.procs.start("client-ip", client_args, ns=lab.topo.ns["c"], on_line=self.rec.on_client)
        lab._wait(lambda: self.rec.routes, 20, "the private-ip site's data plane did not start")
        lab._wait(lambda: self.rec.client_ready, 20, "the private-ip site's client did not start")
        self.traffic_on = True

    def pause_traffic(self):
        if self.client is not None and self.traffic_on:
            for child in (self.client, self.sync):
                child.p.send_signal(signal.SIGUSR1)
            self.traffic_on = False

    def model_state(self):
        """GET /_model of the EC2 model (its counters: addresses moved, describes filtered), or None."""
        code = ("import sys, urllib.request; "
                f"sys.stdout.write(urllib.request.urlopen('{self.model_url}/_model', timeout=5).read().decode())")
        try:
            r = subprocess.run(["ip", "netns", "exec", self.lab.topo.ns["vpc"], child_python(), "-c", code],
                               capture_output=True, text=True, timeout=15)
            return json.loads(r.stdout) if r.returncode == 0 else None
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return None
