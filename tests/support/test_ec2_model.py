"""The EC2 model of faultproxy.py against moto, through boto3 (docs/ec2-model.md).

    .venv/bin/python -m unittest discover -s tests/support -p 'test_ec2_model.py' -v

Starts its own moto server and proxy on loopback. Deadlines have generous slack for a shared
2-core machine; where a check depends on timing, the test first asserts that the timing held,
so a slow machine fails with a message saying so instead of a wrong conclusion.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "faultproxy.py")
MOTO = os.path.join(os.path.dirname(sys.executable), "moto_server")
REGION = "us-east-1"
DEST = "192.168.77.1/32"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, limit=60.0):
    t0 = time.monotonic()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() - t0 > limit:
                raise AssertionError(f"nothing listens on {port} after {limit} s")
            time.sleep(0.05)


def client(endpoint, key="testing", region=REGION, pool=10):
    return boto3.session.Session().client(
        "ec2",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, max_pool_connections=pool),
    )


def error_of(call):
    """(HTTP status, error code) of a failed boto3 call, or (200, None)."""
    try:
        call()
        return 200, None
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]


def at_once(calls):
    """Runs the calls in parallel threads released together; answers [(status, code, s)]."""
    barrier = threading.Barrier(len(calls))
    out = [None] * len(calls)

    def run(i):
        barrier.wait()
        t0 = time.monotonic()
        status, code = error_of(calls[i])
        out[i] = (status, code, time.monotonic() - t0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(o is not None for o in out), "a call did not finish within 60 s"
    return out


def warm(clients):
    """Each client's connection opened (and kept alive) before a measured burst."""
    at_once([c.describe_vpcs for c in clients])
    return clients


class Ec2ModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        mport = free_port()
        cls.moto = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(mport)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.moto_url = f"http://127.0.0.1:{mport}"
        cls.proxy = subprocess.Popen([sys.executable, PROXY, "--upstream", cls.moto_url],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = cls.proxy.stdout.readline()
        assert line.startswith("PORT "), f"faultproxy.py printed {line!r}"
        cls.port = int(line.split()[1])
        cls.url = f"http://127.0.0.1:{cls.port}"
        wait_port(mport)
        # The world is built through the proxy with the model off (as every other test does).
        ec2 = cls.ec2 = client(cls.url)
        # One client for the bursts: boto3 clients are thread-safe, and making 60 of them costs
        # seconds of CPU that would spread a burst out.
        cls.burst = client(cls.url, pool=64)
        cls.direct = client(cls.moto_url)
        vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
        cls.enis = [ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
                    for _ in range(3)]
        cls.tables = [ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"] for _ in range(8)]
        for t in cls.tables:
            ec2.create_route(RouteTableId=t, DestinationCidrBlock=DEST, NetworkInterfaceId=cls.enis[0])

    @classmethod
    def tearDownClass(cls):
        for p in (cls.proxy, cls.moto):
            p.kill()
            p.wait()
        cls.proxy.stdout.close()
        cls.proxy.stderr.close()

    # -- helpers ----------------------------------------------------------------------------
    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def model(self, cfg):
        status, out = self.control("POST", "/_model", cfg)
        self.assertEqual(status, 200, out)
        self.control("DELETE", "/_log")
        return out

    def stats(self):
        return self.control("GET", "/_model")[1]

    def log(self):
        return self.control("GET", "/_log")[1]

    def setUp(self):
        self.control("DELETE", "/_faults")
        self.control("DELETE", "/_model")
        self.control("DELETE", "/_log")

    def target(self, ec2, table):
        rt = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]
        return next((r.get("NetworkInterfaceId") for r in rt["Routes"] if r.get("DestinationCidrBlock") == DEST), None)

    def targets(self, ec2, tables):
        out = {}
        for rt in ec2.describe_route_tables(RouteTableIds=tables)["RouteTables"]:
            out[rt["RouteTableId"]] = next(
                (r.get("NetworkInterfaceId") for r in rt["Routes"] if r.get("DestinationCidrBlock") == DEST), None)
        return out

    def replace(self, ec2, table, eni):
        return lambda: ec2.replace_route(RouteTableId=table, DestinationCidrBlock=DEST, NetworkInterfaceId=eni)

    # -- token buckets ----------------------------------------------------------------------
    def test_burst_beyond_the_mutating_bucket_is_throttled_then_refills(self):
        table, eni = self.tables[0], self.enis[1]
        clients = warm([self.burst] * 60)
        self.model({"seed": 1, "consistency": False})
        out = at_once([self.replace(c, table, eni) for c in clients])
        arrivals = [e["t"] for e in self.log() if e["action"] == "ReplaceRoute"]
        self.assertEqual(len(arrivals), 60)
        # Tokens arrive once a second after the bucket's first request: a burst within that
        # second sees exactly the bucket.
        self.assertLess(max(arrivals) - min(arrivals), 0.9, "the burst did not arrive within one second")
        passed = [o for o in out if o[0] == 200]
        throttled = [o for o in out if o[:2] == (503, "RequestLimitExceeded")]
        self.assertEqual(len(passed), 50, out)
        self.assertEqual(len(throttled), 10, out)
        st = self.stats()
        self.assertEqual(st["throttled"], {"ReplaceRoute": 10})
        self.assertEqual(st["requests"]["ReplaceRoute"], 60)
        self.assertGreaterEqual(st["max_in_flight"], 2)
        marked = [e for e in self.log() if e["fault"] == "model:throttle"]
        self.assertEqual(len(marked), 10)
        self.assertTrue(all(e["status"] == 503 for e in marked), marked)

        # Other actions have their own buckets: describes and CreateRoute still pass.
        ec2 = self.ec2
        for _ in range(20):
            self.assertEqual(error_of(lambda: ec2.describe_route_tables(RouteTableIds=[table])), (200, None))
        self.assertEqual(error_of(lambda: ec2.create_route(RouteTableId=table, DestinationCidrBlock="192.168.78.0/24",
                                                           NetworkInterfaceId=eni)), (200, None))
        self.assertEqual(self.stats()["throttled"], {"ReplaceRoute": 10})

        # The refill: 5 tokens a second, at the bucket's next tick (one may have come already).
        before = self.stats()["buckets"][REGION]["ReplaceRoute"]
        self.assertLess(before["level"], 50.0 - 5.0, before)
        time.sleep(before["next_refill_ms"] / 1000.0 + 0.1)
        after = self.stats()["buckets"][REGION]["ReplaceRoute"]
        self.assertEqual(after["level"], before["level"] + 5.0, (before, after))
        self.assertGreater(after["next_refill_ms"], 500, "the check came too late to see one tick")
        tokens = int(after["level"])
        out = at_once([self.replace(c, table, eni) for c in clients[: tokens + 5]])
        self.assertEqual(sorted(o[0] for o in out), [200] * tokens + [503] * 5, out)

    def test_configured_buckets_categories_and_overrides(self):
        self.model({"throttle": {"categories": {"non_mutating": {"size": 3, "refill": 0}},
                                 "actions": {"DescribeVpcs": {"size": 1, "refill": 0},
                                             "DescribeSubnets": "mutating"}},
                    "consistency": False})
        ec2 = self.ec2
        rtb = [error_of(lambda: ec2.describe_route_tables(RouteTableIds=[self.tables[1]]))[0] for _ in range(5)]
        self.assertEqual(rtb, [200, 200, 200, 503, 503])
        self.assertEqual([error_of(ec2.describe_vpcs)[0] for _ in range(2)], [200, 503])
        # Each action its own bucket within its category: DescribeSecurityGroups is untouched.
        self.assertEqual([error_of(ec2.describe_security_groups)[0] for _ in range(3)], [200] * 3)
        self.assertEqual([error_of(ec2.describe_subnets)[0] for _ in range(4)], [200] * 4)
        b = self.stats()["buckets"][REGION]
        self.assertEqual(b["DescribeRouteTables"]["category"], "non_mutating")
        self.assertEqual(b["DescribeRouteTables"]["level"], 0.0)
        self.assertEqual(b["DescribeVpcs"]["category"], "action")
        self.assertEqual(b["DescribeSubnets"]["category"], "mutating")
        self.assertEqual(b["DescribeSubnets"]["size"], 50)
        self.assertEqual(self.stats()["throttled"], {"DescribeRouteTables": 2, "DescribeVpcs": 1})

    def test_throttled_requests_can_be_made_to_spend_tokens(self):
        for consumes, level in ((False, 0.0), (True, -2.0)):
            self.model({"throttle": {"actions": {"DescribeVpcs": {"size": 2, "refill": 0}},
                                     "throttled_consumes": consumes}})
            self.assertEqual([error_of(self.ec2.describe_vpcs)[0] for _ in range(4)], [200, 200, 503, 503])
            self.assertEqual(self.stats()["buckets"][REGION]["DescribeVpcs"]["level"], level)

    def test_buckets_are_per_region_and_shared_by_every_client(self):
        self.model({"throttle": {"actions": {"DescribeVpcs": {"size": 3, "refill": 0}}}})
        a, b = client(self.url, key="member-a"), client(self.url, key="member-b")
        other = client(self.url, region="eu-west-1")
        self.assertEqual([error_of(a.describe_vpcs)[0] for _ in range(2)], [200, 200])
        self.assertEqual([error_of(b.describe_vpcs)[0] for _ in range(2)], [200, 503])
        self.assertEqual(error_of(other.describe_vpcs)[0], 200)
        self.assertEqual(set(self.stats()["buckets"]), {REGION, "eu-west-1"})

    # -- eventual consistency ---------------------------------------------------------------
    def test_describe_shows_the_previous_state_for_the_stale_window(self):
        self.model({"throttle": False, "consistency": {"stale_ms": 1500}})
        table, old, new = self.tables[2], self.enis[0], self.enis[2]
        self.assertEqual(self.target(self.ec2, table), old)
        self.replace(self.ec2, table, new)()
        written = time.monotonic()
        seen = self.target(self.ec2, table)
        self.assertLess(time.monotonic() - written, 1.2, "the describe came too late to be inside the window")
        self.assertEqual(seen, old, "a describe inside the window shows the state before the write")
        self.assertEqual(self.target(self.direct, table), new, "the write itself landed in moto at once")
        log = self.log()
        write = next(i for i, e in enumerate(log) if e["action"] == "ReplaceRoute")
        entry = next(e for e in log[write:] if e["action"] == "DescribeRouteTables")
        self.assertEqual(entry["stale"], [table])
        self.assertIsNone(entry["fault"])
        # Other tables in the same answer are answered as moto holds them.
        both = self.targets(self.ec2, [table, self.tables[3]])
        self.assertEqual(both, {table: old, self.tables[3]: self.enis[0]})
        time.sleep(max(0.0, written + 1.5 + 0.3 - time.monotonic()))
        self.assertEqual(self.target(self.ec2, table), new, "after the window the write is visible")
        st = self.stats()
        self.assertGreaterEqual(st["stale"][table], 2)
        self.assertNotIn(self.tables[3], st["stale"])
        self.assertEqual(self.log()[-1].get("stale"), None)

    def test_two_quick_writes_end_visible_as_the_last(self):
        tables = self.tables[4:8]
        a, b, c = self.enis
        for t in tables:  # a known starting point, set behind the proxy's back
            self.direct.replace_route(RouteTableId=t, DestinationCidrBlock=DEST, NetworkInterfaceId=c)
        # Seed 3 draws a second window shorter than the first for some table: the clamp is
        # exercised (asserted below), not just possible.
        self.model({"seed": 3, "throttle": False, "consistency": {"min_ms": 100, "max_ms": 1200}})
        for t in tables:
            self.replace(self.ec2, t, a)()
            self.replace(self.ec2, t, b)()
        self.assertEqual(self.targets(self.direct, tables), {t: b for t in tables})
        resources = self.stats()["resources"]
        for t in tables:
            pending = resources[t]["pending_ms"]
            self.assertEqual(pending, sorted(pending), f"{t}: a later write would be visible first")
        seen = {t: [] for t in tables}
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            for t, eni in self.targets(self.ec2, tables).items():
                seen[t].append(eni)
            if all(s[-1] == b for s in seen.values()) and time.monotonic() > deadline - 1.0:
                break
            time.sleep(0.05)
        for t, s in seen.items():
            self.assertEqual(s[-1], b, f"{t}: {s}")
            after_b = s[s.index(b):]
            self.assertEqual(set(after_b), {b}, f"{t}: an earlier write reappeared after the last one: {s}")
        st = self.stats()
        self.assertGreaterEqual(st["clamped"], 1, st)
        self.assertEqual(st["snapshot_failures"], 0)
        self.assertTrue(all(st["resources"][t]["writes_in_flight"] == 0 for t in tables))

    def test_failed_write_makes_no_version_and_deletes_are_stale_too(self):
        self.model({"throttle": False, "consistency": {"stale_ms": 1500}})
        table = self.tables[1]
        status, code = error_of(lambda: self.ec2.replace_route(
            RouteTableId=table, DestinationCidrBlock="192.168.99.1/32", NetworkInterfaceId=self.enis[1]))
        self.assertEqual(status, 400, code)
        self.assertEqual(self.stats()["resources"][table]["versions"], 1)  # the state before it only
        route = "192.168.99.2/32"
        self.ec2.create_route(RouteTableId=table, DestinationCidrBlock=route, NetworkInterfaceId=self.enis[1])
        dests = lambda: {r.get("DestinationCidrBlock") for r in
                         self.ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]}
        self.assertNotIn(route, dests(), "a new route is not visible at once")
        time.sleep(1.8)
        self.assertIn(route, dests())
        self.ec2.delete_route(RouteTableId=table, DestinationCidrBlock=route)
        self.assertIn(route, dests(), "a deleted route stays visible for the window")
        time.sleep(1.8)
        self.assertNotIn(route, dests())

    # -- latency ----------------------------------------------------------------------------
    def test_latency_is_applied_concurrently(self):
        n, ms = 20, 200
        clients = warm([self.burst] * n)
        self.model({"throttle": False, "consistency": False, "latency_ms": ms})
        t0 = time.monotonic()
        out = at_once([c.describe_vpcs for c in clients])
        wall = time.monotonic() - t0
        self.assertTrue(all(o[0] == 200 for o in out), out)
        self.assertGreaterEqual(min(o[2] for o in out), ms / 1000.0 * 0.95, "every request waited")
        self.assertLess(wall, n * ms / 1000.0 / 3, f"{n} parallel requests took {wall:.2f} s")
        self.assertGreaterEqual(self.stats()["max_in_flight"], n // 2)

    def test_answer_latency_comes_after_the_change_landed(self):
        self.model({"throttle": False, "consistency": False, "answer_latency_ms": [300, 400]})
        table = self.tables[3]
        done = []
        t = threading.Thread(target=lambda: done.append(self.replace(self.ec2, table, self.enis[1])()))
        t0 = time.monotonic()
        t.start()
        time.sleep(0.15)
        self.assertFalse(done)
        self.assertEqual(self.target(self.direct, table), self.enis[1], "forwarded before the wait")
        t.join(10)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.replace(self.direct, table, self.enis[0])()

    # -- off, rules, errors -----------------------------------------------------------------
    def test_model_off_forwards_plainly(self):
        self.assertEqual(self.stats(), {"enabled": False, "config": None})
        table = self.tables[0]
        out = at_once([self.replace(self.burst, table, self.enis[2])] * 60)
        self.assertEqual([o[0] for o in out], [200] * 60)
        self.replace(self.ec2, table, self.enis[0])()
        self.assertEqual(self.target(self.ec2, table), self.enis[0])
        log = self.log()
        self.assertEqual(len(log), 62)
        self.assertTrue(all(e["fault"] is None and "stale" not in e for e in log))
        # On, then off again: the same.
        self.model({"throttle": {"actions": {"DescribeVpcs": {"size": 1, "refill": 0}}}})
        self.assertEqual([error_of(self.ec2.describe_vpcs)[0] for _ in range(2)], [200, 503])
        self.assertEqual(self.control("DELETE", "/_model"), (200, {}))
        self.assertEqual([error_of(self.ec2.describe_vpcs)[0] for _ in range(3)], [200] * 3)

    def test_rules_take_requests_before_the_model(self):
        self.model({"throttle": {"actions": {"DescribeVpcs": {"size": 1, "refill": 0}}}})
        status, _ = self.control("POST", "/_faults", [{"action": "DescribeVpcs", "fault": "ec2_error",
                                                        "code": "InternalError", "status": 500}])
        self.assertEqual(status, 200)
        self.assertEqual(error_of(self.ec2.describe_vpcs), (500, "InternalError"))
        self.assertEqual(error_of(self.ec2.describe_vpcs), (200, None))  # the model's one token
        self.assertEqual(error_of(self.ec2.describe_vpcs), (503, "RequestLimitExceeded"))
        self.assertEqual([e["fault"] for e in self.log()], ["ec2_error", None, "model:throttle"])
        self.assertEqual(self.stats()["requests"], {"DescribeVpcs": 2})

    def test_other_services_pass_untouched(self):
        # moto serves STS on the same port; a request signed for STS is not EC2's to throttle.
        self.model({"throttle": {"actions": {"GetCallerIdentity": {"size": 1, "refill": 0}}}})
        sts = boto3.session.Session().client(
            "sts", endpoint_url=self.url, region_name=REGION, aws_access_key_id="testing",
            aws_secret_access_key="testing", config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
        for _ in range(3):
            self.assertEqual(sts.get_caller_identity()["Account"], "123456789012")
        self.assertEqual(self.stats()["requests"], {})
        self.assertEqual([e["fault"] for e in self.log()], [None] * 3)

    def test_config_errors_are_rejected_clearly(self):
        self.model({"throttle": {"actions": {"DescribeVpcs": {"size": 1, "refill": 0}}}})
        bad = [
            ({"throtle": {}}, "throtle"),
            ({"throttle": {"categories": {"mutating": {"size": -1}}}}, "size"),
            ({"throttle": {"categories": {"extra": {"size": 5}}}}, "refill"),
            ({"throttle": {"actions": {"ReplaceRoute": "fast"}}}, "unknown category 'fast'"),
            ({"throttle": {"refill_mode": "minute"}}, "refill_mode"),
            ({"consistency": {"min_ms": 500, "max_ms": 100}}, "min_ms"),
            ({"consistency": {"stale_ms": 100, "max_ms": 200}}, "stale_ms"),
            ({"latency_ms": [1, 2, 3]}, "latency_ms"),
            ({"latency_ms": "fast"}, "latency_ms"),
            ({"seed": "x"}, "seed"),
            ([1], "the model"),
        ]
        for cfg, words in bad:
            status, out = self.control("POST", "/_model", cfg)
            self.assertEqual(status, 400, cfg)
            self.assertIn(words, out["error"], cfg)
        req = urllib.request.Request(self.url + "/_model", data=b"{not json", method="POST")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        self.assertEqual(e.exception.code, 400)
        # A rejected config leaves the model as it was.
        self.assertEqual(self.stats()["config"]["throttle"]["actions"]["DescribeVpcs"], {"size": 1, "refill": 0})
        # The same checks at start: a clear message and exit status 2.
        p = subprocess.run([sys.executable, PROXY, "--upstream", self.moto_url, "--model", '{"latency_ms": -1}'],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--model: latency_ms must be a number >= 0", p.stderr)

    def test_model_from_a_file_at_start(self):
        cfg = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ec2-model-{os.getpid()}.json")
        with open(cfg, "w", encoding="utf-8") as f:
            json.dump({"consistency": {"stale_ms": 800}, "latency_ms": [10, 20]}, f)
        p = subprocess.Popen([sys.executable, PROXY, "--upstream", self.moto_url, "--model", "@" + cfg],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            port = int(p.stdout.readline().split()[1])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_model", timeout=10) as r:
                st = json.loads(r.read())
            self.assertTrue(st["enabled"])
            self.assertEqual(st["config"]["consistency"], {"enabled": True, "min_ms": 800, "max_ms": 800})
            self.assertEqual(st["config"]["latency_ms"], [10, 20])
            self.assertEqual(st["config"]["throttle"]["categories"]["mutating"], {"size": 50, "refill": 5})
            # GET's config posts back as it is.
            status, _ = self.control("POST", "/_model", st["config"])
            self.assertEqual(status, 200)
        finally:
            p.kill()
            p.wait()
            p.stdout.close()
            os.unlink(cfg)


if __name__ == "__main__":
    unittest.main()
