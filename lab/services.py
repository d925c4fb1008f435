"""The lab's cast: moto in the router, the world it holds, two members (IMDSv2, the VIP service,
an IRIS-like process with the library loaded), the data-plane sync loop and the client.

Lab.start() brings it all up in order; Lab.close() takes it all down and is safe to call twice
and from any exit path. Members die through link_down() and kill_processes(), and come back
through revive().
"""

import json
import os
import re
import shutil
import signal
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

    def __init__(self, lab, role, ident):
        self.lab = lab
        self.role = role  # "a" / "b"
        self.name = role.upper()  # what the service answers and the reports show
        self.ns = lab.topo.ns[role]
        self.ident = ident  # world.py's member: instance_id, eni, mac, subnet, az, private_ip
        # The endpoint is the one override: EC2 is reached at the router's address in this
        # member's subnet, as through a VPC interface endpoint. Everything else (VIP from ens5:1,
        # ENI, region, credentials) the library finds itself, through IMDSv2.
        self.config = f"endpoint=http://{lab.topo.gw(role)}:{MOTO_PORT}"
        self.imds = self.service = self.host = None
        self.host_calls = 0
        self.alive = False

    def start_imds(self):
        w, m = self.lab.world, self.ident
        self.imds = self.lab.procs.start(
            f"imds-{self.role}",
            [child_python(), "-u", os.path.join(SUPPORT, "imds.py"), "--host", netns.IMDS_ADDR, "--port", "80",
             "--instance-id", m["instance_id"], "--mac", m["mac"], "--eni", m["eni"], "--vpc", w["vpc"],
             "--subnet", m["subnet"], "--region", w["region"], "--az", m["az"], "--local-ipv4", m["private_ip"],
             "--credentials"],
            ns=self.ns)
        self.imds.wait_for("PORT", 20)

    def start_service(self):
        self.service = self.lab.procs.start(
            f"service-{self.role}",
            [child_python(), "-u", os.path.join(INSIDE, "vip_service.py"), "--bind", netns.VIP,
             "--port", str(SERVICE_PORT), "--name", self.name],
            ns=self.ns)
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
    def __init__(self, zfhost=None, sync_ms=5.0, tables=2, cidr_index=20, client_opts=None, keep_logs=False):
        self.zfhost = zfhost or default_zfhost()
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
        vpc = self.topo.ns["vpc"]
        py = child_python()
        self.procs.start("moto", [os.path.join(os.path.dirname(py), "moto_server"), "-H", "0.0.0.0", "-p", str(MOTO_PORT)],
                         ns=vpc)
        local = f"http://127.0.0.1:{MOTO_PORT}"
        setup = self.procs.start("world", [py, "-u", os.path.join(INSIDE, "world_setup.py"), "--endpoint", local,
                                           "--tables", str(self.tables), "--cidr-index", str(self.cidr_index)], ns=vpc)
        line, _ = setup.next_line(90)
        if not line:
            raise RuntimeError(f"world setup failed; see {self.log_dir}/world.stderr")
        self.world = json.loads(line)
        for role in ("a", "b"):
            m = self.world[role]
            netns.configure_member(self.topo, role, m["private_ip"], m["mac"])
            self.members[role] = Member(self, role, m)
        for mem in self.members.values():
            mem.start_imds()
            mem.start_service()
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
        self.rec.mark("link down", mem.name, ip_ms=round((time.monotonic() - t) * 1000.0, 1))
        mem.alive = False

    def kill_processes(self, mem):
        """...and its service and its IRIS process die with it."""
        self.procs.stop(mem.service, sig=signal.SIGKILL)
        self.procs.stop(mem.host, sig=signal.SIGKILL)
        self.rec.mark("service + IRIS process killed", mem.name)

    def revive(self, mem, setup=False):
        """The member's machine is back: NIC up, service restarted, a fresh IRIS process (so its
        first library call is a cold one, as after a real restart). Its IMDS never went away."""
        netns.set_link(self.topo, mem.role, True)
        mem.start_service()
        mem.start_host()
        mem.alive = True
        self.rec.mark("revived", mem.name, setup=setup)

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
