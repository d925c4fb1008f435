"""The contenders: every way of moving the VIP that the benchmark compares.

Each one claims the VIP for a member (A or B) of the current world and says what it took:
`run(to)` returns a Run with t0 (CLOCK_MONOTONIC when the claim was started, the start of the
switch window), t1 (when it returned), the claim latency in ms and whether it said it succeeded.
`plan(i)` gives the holder before run i and the member that claims in it; the orchestrator puts
the route at that starting holder (untimed) before each run.
"""

import json
import os
import shutil
import subprocess
import time

from common import HERE, PY, REGION, VIP, VIP_CIDR, clean_env, json_lines, release, spawn_timed

AGENT = "/usr/lib/ocf/resource.d/heartbeat/aws-vpc-move-ip"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def aws_cli():
    """The aws CLI to use: $IRISVIP_BENCH_AWSCLI, else the one in bench/.venv-awscli."""
    return os.environ.get("IRISVIP_BENCH_AWSCLI") or shutil.which("aws", path=os.path.join(HERE, ".venv-awscli", "bin"))


class Run:
    def __init__(self, t0, t1, claim_ms, ok, error=None, **extra):
        self.t0, self.t1, self.claim_ms, self.ok, self.error = t0, t1, claim_ms, ok, error
        self.extra = extra


class Context:
    """What contenders share: the world, where member A's files live, tool paths."""

    def __init__(self, world, floor, workdir):
        self.world, self.floor, self.workdir = world, floor, workdir
        self.home = os.path.join(workdir, "home")
        os.makedirs(os.path.join(self.home, ".aws"), exist_ok=True)
        # The aws CLI insists on the profile it is given (the agent passes --profile default).
        self.aws_config = os.path.join(self.home, ".aws", "config")
        with open(self.aws_config, "w") as f:
            f.write("[default]\noutput = text\n")

    def env(self, member="A", **extra):
        """A member's process environment: EC2 endpoint = moto, credentials from the member's
        instance profile (IMDS), region from IMDS, nothing from the caller's AWS settings."""
        env = clean_env(HOME=self.home, PATH=PATH, AWS_CONFIG_FILE=self.aws_config,
                        AWS_SHARED_CREDENTIALS_FILE=os.path.join(self.home, ".aws", "credentials"),
                        AWS_ENDPOINT_URL_EC2=self.world.moto.endpoint, **extra)
        if member != "A":
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = self.world.imds[member]
        return env

    def sts_endpoint(self):
        """Where STS is (role_arn): moto serves it on the EC2 port."""
        return self.world.moto.endpoint


class Contender:
    key = ""
    phases = ("quiet", "polled")

    def available(self):
        return True, ""

    def setup(self, ctx):
        self.ctx = ctx

    def plan(self, i):
        return "B", "A"

    def teardown(self):
        pass


class Floor(Contender):
    key = "floor"

    def plan(self, i):
        return ("B", "A") if i % 2 == 0 else ("A", "B")

    def run(self, to):
        t0, reply = self.ctx.floor.replace(to)
        t1 = time.monotonic()
        return Run(t0, t1, reply["ms"], reply["ok"], reply.get("error"))


def dist_lib():
    """The `make dist` library (release + fat LTO...): $IRISVIP_BENCH_DIST_LIB, else dist/libirisvip.so."""
    return os.environ.get("IRISVIP_BENCH_DIST_LIB") or os.path.join(HERE, "..", "dist", "libirisvip.so")


class Zfhost:
    """zfhost with the test build's library, or (`lib`) another build of it."""
    lib = None

    def available(self):
        if not os.path.exists(release("examples", "zfhost")):
            return False, "target/release/examples/zfhost is missing"
        if self.lib and not os.path.exists(self.lib()):
            return False, f"{self.lib()} is missing (make dist builds it)"
        return True, ""

    def zfhost(self, *args):
        return [release("examples", "zfhost"), *(["--lib", self.lib()] if self.lib else []), *args]


# role_arn: a role in the world's own account (moto's default), assumed through STS on moto's port.
ROLE = "arn:aws:iam::123456789012:role/irisvip-routes"


class IrisvipWarm(Zfhost, Contender):
    key = "warm"
    extra_config = ""  # appended to the claim's config
    resource = "route"  # what the claim moves (the world's reset and check follow it)

    def config(self):
        return f"vip={VIP}{self.extra_config}"

    def env(self, member):
        return self.ctx.env(member)

    def setup(self, ctx):
        self.ctx = ctx
        self.hosts = {}
        for m in ("A", "B"):
            p = subprocess.Popen(self.zfhost("-"), stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, env=self.env(m), text=True)
            self.hosts[m] = (p, json.loads(p.stdout.readline()))
        # Warm both: each process's first claim is its cold one.
        for m in ("A", "B", "A", "B"):
            line, out = self.call(m)
            if not out.get("ok"):
                raise RuntimeError(f"warm-up claim of {m} failed: {out}")

    def call(self, m):
        p = self.hosts[m][0]
        p.stdin.write(f"call\tvip_claim\t{self.config()}\n")
        p.stdin.flush()
        line = json.loads(p.stdout.readline())
        return line, json.loads(line.get("output") or "{}")

    def plan(self, i):
        return ("B", "A") if i % 2 == 0 else ("A", "B")

    def run(self, to):
        t0 = time.monotonic()
        line, out = self.call(to)
        t1 = time.monotonic()
        return Run(t0, t1, line["ms"], bool(out.get("ok")), out.get("error"),
                   threads_after=line.get("threads_after"), threads_before=line.get("threads_before"),
                   elapsed_ms=out.get("elapsed_ms"), actions=[t.get("action") for t in out.get("route_tables", [])],
                   **_address(out))

    def teardown(self):
        for p, _ in self.hosts.values():
            p.stdin.close()
            p.wait(timeout=10)


class IrisvipCold(Zfhost, Contender):
    key = "cold"
    extra_config = ""
    resource = "route"

    def config(self):
        return f"vip={VIP}{self.extra_config}"

    def env(self, member):
        return self.ctx.env(member)

    def run(self, to):
        s = spawn_timed(self.zfhost("call", "vip_claim", self.config(), "rss", "threads"),
                        self.env(to), timeout=60)
        lines = json_lines(s.stdout)
        load = next((x for x in lines if x.get("cmd") == "load"), {})
        call = next((x for x in lines if x.get("cmd") == "call"), {})
        rss = next((x for x in lines if x.get("cmd") == "rss"), {})
        out = json.loads(call.get("output") or "{}")
        ok = s.rc == 0 and bool(out.get("ok"))
        return Run(s.t0, s.t1, s.ms, ok, out.get("error") or (s.stderr[-500:] if not ok else None),
                   load_ms=load.get("ms"), call_ms=call.get("ms"),
                   rss_before_kib=load.get("rss_before_kib"), rss_load_kib=load.get("rss_kib"),
                   rss_after_kib=rss.get("kib"), threads_load=load.get("threads"),
                   threads_after=call.get("threads_after"),
                   elapsed_ms=out.get("elapsed_ms"), **_address(out))


class IrisvipWarmDist(IrisvipWarm):
    key = "warm-dist"
    lib = staticmethod(dist_lib)


class IrisvipColdDist(IrisvipCold):
    key = "cold-dist"
    lib = staticmethod(dist_lib)


class IrisvipWarmRole(IrisvipWarm):
    """Warm, with role_arn: STS AssumeRole once per process (cached until shortly before expiry)."""

    key = "warm-role"
    extra_config = f";role_arn={ROLE}"

    def env(self, member):
        return self.ctx.env(member, AWS_ENDPOINT_URL_STS=self.ctx.sts_endpoint())


class IrisvipColdRole(IrisvipCold):
    """Cold, with role_arn: every fresh process assumes the role before its first EC2 call."""

    key = "cold-role"
    extra_config = f";role_arn={ROLE}"

    def env(self, member):
        return self.ctx.env(member, AWS_ENDPOINT_URL_STS=self.ctx.sts_endpoint())


def _address(out):
    """An address mode's result: what the claim did and whether a read-back confirmed it."""
    a = out.get("address")
    return {"address_action": a.get("action"), "confirmed": a.get("confirmed")} if isinstance(a, dict) else {}


class PrivateIp:
    """mode=private-ip: the world's secondary address (A's at the world's creation), moved between
    the members' ENIs (one subnet) with AssignPrivateIpAddresses AllowReassignment."""

    resource = "private-ip"

    def config(self):
        return f"mode=private-ip;vip={self.ctx.world.w['secondary_ip']['ip']}"


class Eip:
    """mode=eip: the world's Elastic IP, associated with the claiming member's ENI (its primary
    address) with AssociateAddress AllowReassociation."""

    resource = "eip"

    def config(self):
        return f"mode=eip;allocation_id={self.ctx.world.w['eip']['allocation_id']}"


class IrisvipWarmPrivateIp(PrivateIp, IrisvipWarm):
    key = "warm-private-ip"


class IrisvipColdPrivateIp(PrivateIp, IrisvipCold):
    key = "cold-private-ip"


class IrisvipWarmEip(Eip, IrisvipWarm):
    key = "warm-eip"


class IrisvipColdEip(Eip, IrisvipCold):
    key = "cold-eip"


class Seed(Contender):
    key = "seed"

    def run(self, to):
        s = spawn_timed([PY, os.path.join(HERE, "seed_approach.py"), VIP_CIDR], self.ctx.env(to), timeout=120)
        return Run(s.t0, s.t1, s.ms, s.rc == 0, s.stderr[-500:] if s.rc else None)


class AwsCli(Contender):
    key = "awscli"

    def available(self):
        if not aws_cli():
            return False, "aws CLI not installed (make bench installs it in bench/.venv-awscli)"
        return True, ""

    def run(self, to):
        s = spawn_timed(["/bin/sh", os.path.join(HERE, "awscli_failover.sh"), VIP_CIDR, *self.ctx.world.tables],
                        self.ctx.env(to, AWS=aws_cli()), timeout=600)
        return Run(s.t0, s.t1, s.ms, s.rc == 0, s.stderr[-500:] if s.rc else None)


class Agent(AwsCli):
    """ClusterLabs aws-vpc-move-ip `start`, as Pacemaker runs it on the node taking over."""

    key = "agent"
    # Its claim sleeps 1 s per table three times over: one phase (with the poller) is measured.
    phases = ("polled",)

    def available(self):
        if not os.access(AGENT, os.X_OK):
            return False, f"{AGENT} missing (apt-get install resource-agents)"
        return super().available()

    def run(self, to):
        env = self.ctx.env(to, OCF_ROOT="/usr/lib/ocf", OCF_RESOURCE_INSTANCE="vip",
                           OCF_RESKEY_ip=VIP, OCF_RESKEY_routing_table=",".join(self.ctx.world.tables),
                           OCF_RESKEY_interface="eth0", OCF_RESKEY_awscli=aws_cli(),
                           OCF_RESKEY_region=REGION, OCF_RESKEY_profile="default",
                           OCF_RESKEY_lookup_type="NetworkInterfaceId", HA_LOGFACILITY="none",
                           HA_debug="0")
        s = spawn_timed([AGENT, "start"], env, timeout=900)
        return Run(s.t0, s.t1, s.ms, s.rc == 0, s.stderr[-800:] if s.rc else None)


ALL = [Floor, IrisvipWarm, IrisvipCold, IrisvipWarmDist, IrisvipColdDist, IrisvipWarmRole, IrisvipColdRole,
       Seed, AwsCli, Agent]
