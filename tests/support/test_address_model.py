"""The EC2 model's address semantics (private IPs, Elastic IPs) against moto, through boto3.

    .venv/bin/python -m unittest discover -s tests/support -p 'test_address_model.py' -v

docs/ec2-model.md ("Private IPs and Elastic IPs") says what is modelled and why. Each test shows
moto's own behaviour first (asked directly, or through the proxy with the model off) where it
differs, so it fails if the model stops correcting it or if moto changes.
"""

import json
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from test_ec2_model import MOTO, PROXY, REGION, client, error_of, free_port, wait_port

ENI_FILTER = "addresses.private-ip-address"


class AddressModelTest(unittest.TestCase):
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
        cls.url = f"http://127.0.0.1:{int(line.split()[1])}"
        wait_port(mport)
        cls.ec2 = client(cls.url)
        cls.direct = client(cls.moto_url)
        cls.vpc = cls.direct.create_vpc(CidrBlock="10.88.0.0/16")["Vpc"]["VpcId"]
        cls.next_subnet = 0

    @classmethod
    def tearDownClass(cls):
        for p in (cls.proxy, cls.moto):
            p.kill()
            p.wait()
        cls.proxy.stdout.close()
        cls.proxy.stderr.close()

    def setUp(self):
        self.control("DELETE", "/_faults")
        self.control("DELETE", "/_log")
        self.model({"throttle": False, "consistency": False})

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
        return out

    def stats(self):
        return self.control("GET", "/_model")[1]

    def subnet(self, n_enis=2):
        """A fresh subnet of the VPC with n ENIs: (subnet id, prefix "10.88.K.", [eni ids])."""
        cls = type(self)
        cls.next_subnet += 1
        prefix = f"10.88.{cls.next_subnet}."
        subnet = self.direct.create_subnet(VpcId=self.vpc, CidrBlock=prefix + "0/24")["Subnet"]["SubnetId"]
        enis = [self.direct.create_network_interface(SubnetId=subnet, PrivateIpAddress=f"{prefix}{10 + i}")
                ["NetworkInterface"]["NetworkInterfaceId"] for i in range(n_enis)]
        return subnet, prefix, enis

    def ips(self, ec2, eni):
        e = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
        return sorted(a["PrivateIpAddress"] for a in e["PrivateIpAddresses"])

    def holders(self, ec2, ip, name=ENI_FILTER):
        out = ec2.describe_network_interfaces(Filters=[{"Name": name, "Values": [ip]},
                                                       {"Name": "vpc-id", "Values": [self.vpc]}])
        return sorted(e["NetworkInterfaceId"] for e in out["NetworkInterfaces"])

    def raw(self, params):
        """An EC2 query request boto3 would refuse to send (moto and the model check no signature)."""
        body = urllib.parse.urlencode(dict(params, Version="2016-11-15")).encode()
        req = urllib.request.Request(self.url + "/", data=body, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/ec2/aws4_request, "
                             "SignedHeaders=host, Signature=0"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def assign(self, ec2, eni, ip, allow=True):
        return lambda: ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=[ip],
                                                       AllowReassignment=allow)

    def message(self, call):
        try:
            call()
        except Exception as e:  # noqa: BLE001 - botocore's ClientError
            return e.response["Error"]["Message"]
        return None

    def eip(self, ec2, allocation):
        return ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0]

    # -- private IPs ------------------------------------------------------------------------
    def test_reassignment_moves_the_address(self):
        _, p, (a, b) = self.subnet()
        ip = p + "50"
        self.direct.assign_private_ip_addresses(NetworkInterfaceId=a, PrivateIpAddresses=[ip])
        # moto alone (the model off): the address stays on the old ENI too.
        self.control("DELETE", "/_model")
        self.assign(self.ec2, b, ip)()
        self.assertIn(ip, self.ips(self.direct, a), "moto changed: it now moves the address itself")
        self.assertIn(ip, self.ips(self.direct, b))
        self.direct.unassign_private_ip_addresses(NetworkInterfaceId=b, PrivateIpAddresses=[ip])
        # The model: EC2 moves it.
        self.model({"throttle": False, "consistency": False})
        self.assign(self.ec2, b, ip)()
        self.assertNotIn(ip, self.ips(self.direct, a), "the address left the old ENI")
        self.assertIn(ip, self.ips(self.direct, b))
        self.assertEqual(self.holders(self.ec2, ip), [b])
        self.assertEqual(self.stats()["addresses"]["moved"], 1)
        # And back: the last claim wins, one holder at a time.
        self.assign(self.ec2, a, ip)()
        self.assertEqual(self.holders(self.ec2, ip), [a])
        self.assertEqual(self.ips(self.direct, b), [p + "11"])

    def test_filter_matches_secondary_addresses(self):
        _, p, (a, b) = self.subnet()
        ip = p + "51"
        self.direct.assign_private_ip_addresses(NetworkInterfaceId=a, PrivateIpAddresses=[ip])
        for name in (ENI_FILTER, "private-ip-address"):
            self.assertEqual(self.holders(self.direct, ip, name), [], f"moto changed: {name} sees secondaries")
            self.assertEqual(self.holders(self.ec2, ip, name), [a], name)
        # Primary addresses still match, other filters still apply, wildcards work as EC2's do.
        self.assertEqual(self.holders(self.ec2, p + "11"), [b])
        self.assertEqual(self.holders(self.ec2, p + "5*"), [a])
        out = self.ec2.describe_network_interfaces(Filters=[{"Name": ENI_FILTER, "Values": [ip]},
                                                            {"Name": "vpc-id", "Values": ["vpc-00000000"]}])
        self.assertEqual(out["NetworkInterfaces"], [])
        self.assertEqual(self.holders(self.ec2, p + "99"), [])

    def test_reassignment_without_allow_is_refused(self):
        _, p, (a, b) = self.subnet()
        ip = p + "52"
        self.direct.assign_private_ip_addresses(NetworkInterfaceId=a, PrivateIpAddresses=[ip])
        status, code = error_of(self.assign(self.ec2, b, ip, allow=False))
        self.assertEqual((status, code), (400, "InvalidParameterValue"))
        self.assertEqual(self.message(self.assign(self.ec2, b, ip, allow=False)),
                         f"[{ip}] assigned, but move is not allowed.")
        self.assertEqual((self.ips(self.direct, a), self.ips(self.direct, b)), ([p + "10", ip], [p + "11"]))
        self.assertEqual([e["fault"] for e in self.control("GET", "/_log")[1]
                          if e["action"] == "AssignPrivateIpAddresses"], ["model:refuse"] * 2)
        # moto alone accepts it and keeps both.
        self.assertEqual(error_of(self.assign(self.direct, b, ip, allow=False)), (200, None))

    def test_addresses_outside_the_subnet_or_reserved_are_refused(self):
        _, p, (a, b) = self.subnet()
        self.assertEqual(self.message(self.assign(self.ec2, a, "10.88.250.7")),
                         "Address does not fall within the subnet's address range")
        self.assertEqual(error_of(self.assign(self.ec2, a, p + "2")), (400, "InvalidParameterValue"))
        self.assertEqual(error_of(self.assign(self.ec2, a, p + "255")), (400, "InvalidParameterValue"))
        self.assertEqual(error_of(self.assign(self.ec2, a, p + "11")), (400, "InvalidParameterValue"),
                         "another ENI's primary address cannot be moved")
        self.assertEqual(self.ips(self.direct, a), [p + "10"])
        self.assertEqual(self.stats()["refused"], {"InvalidParameterValue": 4})
        # moto alone takes an address of another subnet.
        self.assertEqual(error_of(self.assign(self.direct, a, "10.88.250.7")), (200, None))

    def test_unassign_of_an_address_not_held_is_refused(self):
        _, p, (a, b) = self.subnet()
        ip = p + "53"
        self.direct.assign_private_ip_addresses(NetworkInterfaceId=a, PrivateIpAddresses=[ip])
        unassign = lambda eni, addr: lambda: self.ec2.unassign_private_ip_addresses(  # noqa: E731
            NetworkInterfaceId=eni, PrivateIpAddresses=[addr])
        self.assertEqual(error_of(unassign(b, ip)), (400, "InvalidParameterValue"))
        self.assertEqual(self.message(unassign(b, ip)), f"Some of the specified addresses are not assigned to interface {b}")
        self.assertEqual(error_of(unassign(a, p + "10")), (400, "InvalidParameterValue"), "a primary address")
        self.assertEqual(self.ips(self.direct, a), [p + "10", ip])
        self.assertEqual(error_of(unassign(a, ip)), (200, None))
        self.assertEqual(self.ips(self.direct, a), [p + "10"])
        # moto alone: silently succeeds.
        self.assertEqual(error_of(lambda: self.direct.unassign_private_ip_addresses(
            NetworkInterfaceId=b, PrivateIpAddresses=[ip])), (200, None))

    # -- dry runs ---------------------------------------------------------------------------
    def test_dry_runs_change_nothing(self):
        _, p, (a, b) = self.subnet()
        ip = p + "54"
        self.direct.assign_private_ip_addresses(NetworkInterfaceId=a, PrivateIpAddresses=[ip])
        alloc = self.direct.allocate_address(Domain="vpc")["AllocationId"]
        assoc = self.direct.associate_address(AllocationId=alloc, NetworkInterfaceId=a)["AssociationId"]
        calls = [
            lambda: self.ec2.associate_address(AllocationId=alloc, NetworkInterfaceId=b, AllowReassociation=True,
                                               DryRun=True),
            lambda: self.ec2.disassociate_address(AssociationId=assoc, DryRun=True),
        ]
        self.assertEqual([error_of(c) for c in calls], [(412, "DryRunOperation")] * 2)
        self.assertEqual(self.eip(self.direct, alloc)["AssociationId"], assoc)
        # AssignPrivateIpAddresses and UnassignPrivateIpAddresses have no DryRun parameter (boto3
        # refuses to send one): EC2 refuses the unknown parameter; moto would really assign.
        for action in ("AssignPrivateIpAddresses", "UnassignPrivateIpAddresses"):
            status, body = self.raw({"Action": action, "NetworkInterfaceId": b, "PrivateIpAddress.1": ip,
                                     "AllowReassignment": "true", "DryRun": "true"})
            self.assertEqual(status, 400, body)
            self.assertIn("<Code>UnknownParameter</Code>", body)
        self.assertEqual(self.holders(self.ec2, ip), [a])
        log = [e for e in self.control("GET", "/_log")[1] if e["params"].get("DryRun") == "true"]
        self.assertEqual([e["fault"] for e in log], ["model:dry_run"] * 2 + ["model:refuse"] * 2)
        self.control("DELETE", "/_model")
        status, _ = self.raw({"Action": "AssignPrivateIpAddresses", "NetworkInterfaceId": b, "PrivateIpAddress.1": ip,
                              "AllowReassignment": "true", "DryRun": "true"})
        self.assertEqual(status, 200)
        self.assertIn(ip, self.ips(self.direct, b), "moto changed: it now honours DryRun on AssignPrivateIpAddresses")

    def test_denied_dry_runs_through_rules_name_the_resource(self):
        alloc = self.direct.allocate_address(Domain="vpc")["AllocationId"]
        _, _, (a,) = self.subnet(1)
        self.control("POST", "/_faults", [{"action": "AssociateAddress", "params": {"DryRun": "true"},
                                           "fault": "unauthorized", "count": -1}])
        call = lambda: self.ec2.associate_address(AllocationId=alloc, NetworkInterfaceId=a, DryRun=True)  # noqa: E731
        self.assertEqual(error_of(call), (403, "UnauthorizedOperation"))
        self.assertIn("ec2:AssociateAddress on resource: arn:aws:ec2:us-east-1:123456789012:elastic-ip/*",
                      self.message(call))
        self.assertEqual(self.stats()["requests"], {}, "a rule took it before the model")

    # -- Elastic IPs ------------------------------------------------------------------------
    def test_association_records_the_private_ip(self):
        _, p, (a, b) = self.subnet()
        ip = p + "55"
        self.direct.assign_private_ip_addresses(NetworkInterfaceId=b, PrivateIpAddresses=[ip])
        alloc = self.direct.allocate_address(Domain="vpc")["AllocationId"]
        unassociated = self.eip(self.ec2, alloc)
        self.assertNotIn("NetworkInterfaceId", unassociated, "EC2 leaves the fields out; moto writes them empty")
        self.assertEqual(self.eip(self.direct, alloc)["NetworkInterfaceId"], "")
        assoc = self.ec2.associate_address(AllocationId=alloc, NetworkInterfaceId=b, PrivateIpAddress=ip,
                                           AllowReassociation=True)["AssociationId"]
        seen = self.eip(self.ec2, alloc)
        self.assertEqual((seen["AssociationId"], seen["NetworkInterfaceId"], seen["PrivateIpAddress"]), (assoc, b, ip))
        self.assertEqual(self.eip(self.direct, alloc)["PrivateIpAddress"], p + "11", "moto changed: it keeps PrivateIpAddress")
        # A private address that is not the ENI's is refused; moto accepts it.
        bad = lambda ec2: lambda: ec2.associate_address(  # noqa: E731
            AllocationId=alloc, NetworkInterfaceId=a, PrivateIpAddress=ip, AllowReassociation=True)
        self.assertEqual(error_of(bad(self.ec2)), (400, "InvalidParameterValue"))
        self.assertEqual(self.eip(self.ec2, alloc)["AssociationId"], assoc)
        self.assertEqual(error_of(bad(self.direct)), (200, None))

    def test_reassociation_needs_allow_and_moves_the_address(self):
        _, p, (a, b) = self.subnet()
        alloc = self.direct.allocate_address(Domain="vpc")
        aid, public = alloc["AllocationId"], alloc["PublicIp"]
        first = self.ec2.associate_address(AllocationId=aid, NetworkInterfaceId=a)["AssociationId"]
        call = lambda allow: lambda: self.ec2.associate_address(  # noqa: E731
            AllocationId=aid, NetworkInterfaceId=b, AllowReassociation=allow)
        self.assertEqual(error_of(call(False)), (400, "Resource.AlreadyAssociated"))
        self.assertEqual(self.message(call(False)), f"resource {aid} is already associated with associate-id {first}")
        second = call(True)()["AssociationId"]
        seen = self.eip(self.ec2, aid)
        self.assertEqual((seen["AssociationId"], seen["NetworkInterfaceId"]), (second, b))
        old = self.direct.describe_network_interfaces(NetworkInterfaceIds=[a])["NetworkInterfaces"][0]
        self.assertNotIn("Association", old, "the old ENI no longer shows the public IP")
        self.assertEqual(self.stats()["addresses"].get("reassociated"), 1)
        # The old association is gone: EC2 (and moto) answer InvalidAssociationID.NotFound.
        self.assertEqual(error_of(lambda: self.ec2.disassociate_address(AssociationId=first)),
                         (400, "InvalidAssociationID.NotFound"))
        self.ec2.disassociate_address(AssociationId=second)
        self.assertNotIn("AssociationId", self.eip(self.ec2, aid))
        # moto alone: a reassociation leaves the old ENI showing the public IP.
        self.control("DELETE", "/_model")
        self.ec2.associate_address(AllocationId=aid, NetworkInterfaceId=a)
        self.ec2.associate_address(AllocationId=aid, NetworkInterfaceId=b, AllowReassociation=True)
        old = self.direct.describe_network_interfaces(NetworkInterfaceIds=[a])["NetworkInterfaces"][0]
        self.assertEqual(old.get("Association", {}).get("PublicIp"), public, "moto changed: reassociation clears the old ENI")

    # -- eventual consistency ---------------------------------------------------------------
    def test_moves_are_read_stale_for_the_window(self):
        _, p, (a, b) = self.subnet()
        ip = p + "56"
        self.direct.assign_private_ip_addresses(NetworkInterfaceId=a, PrivateIpAddresses=[ip])
        aid = self.direct.allocate_address(Domain="vpc")["AllocationId"]
        first = self.direct.associate_address(AllocationId=aid, NetworkInterfaceId=a)["AssociationId"]
        st = self.model({"throttle": False, "consistency": False, "address_consistency": {"stale_ms": 1500}})
        self.assertFalse(st["config"]["consistency"]["enabled"])
        self.assign(self.ec2, b, ip)()
        self.ec2.associate_address(AllocationId=aid, NetworkInterfaceId=b, AllowReassociation=True)
        written = time.monotonic()
        holders, assoc = self.holders(self.ec2, ip), self.eip(self.ec2, aid)
        self.assertLess(time.monotonic() - written, 1.2, "the reads came too late to be inside the window")
        self.assertEqual(holders, [a], "a read inside the window shows the old holder")
        self.assertEqual((assoc["AssociationId"], assoc["NetworkInterfaceId"]), (first, a))
        self.assertNotIn(ip, self.ips(self.direct, a), "the move itself landed in moto at once")
        stale = [e.get("stale") for e in self.control("GET", "/_log")[1] if e["action"] == "DescribeAddresses"]
        self.assertEqual(stale, [[aid]])
        time.sleep(max(0.0, written + 1.5 + 0.3 - time.monotonic()))
        self.assertEqual(self.holders(self.ec2, ip), [b])
        self.assertEqual(self.eip(self.ec2, aid)["NetworkInterfaceId"], b)
        res = self.stats()["resources"]
        self.assertEqual({res[a]["kind"], res[b]["kind"], res[aid]["kind"]}, {"network_interface", "address"})

    def test_address_consistency_follows_the_route_tables_by_default(self):
        st = self.model({})
        self.assertEqual(st["config"]["address_consistency"], st["config"]["consistency"])
        self.assertEqual(st["config"]["addresses"], {"enabled": True})
        st = self.model({"consistency": {"stale_ms": 300}})
        self.assertEqual(st["config"]["address_consistency"], {"enabled": True, "min_ms": 300, "max_ms": 300})
        st = self.model({"consistency": False})
        self.assertFalse(st["config"]["address_consistency"]["enabled"])
        st = self.model({"addresses": False})
        self.assertFalse(st["config"]["address_consistency"]["enabled"])
        status, out = self.control("POST", "/_model", {"addresses": False, "address_consistency": {"stale_ms": 5}})
        self.assertEqual(status, 400)
        self.assertIn("address_consistency", out["error"])
        status, out = self.control("POST", "/_model", {"address_consistency": {"stale_ms": -5}})
        self.assertEqual(status, 400)
        self.assertIn("address_consistency.stale_ms", out["error"])
        self.assertEqual(self.control("POST", "/_model", st["config"])[0], 200, "GET's config posts back")

    def test_semantics_off_is_moto(self):
        _, p, (a, b) = self.subnet()
        ip = p + "57"
        self.direct.assign_private_ip_addresses(NetworkInterfaceId=a, PrivateIpAddresses=[ip])
        self.model({"throttle": False, "consistency": False, "addresses": False})
        self.assign(self.ec2, b, ip)()
        self.assertIn(ip, self.ips(self.direct, a))
        self.assertEqual(self.holders(self.ec2, ip), [])

    # -- throttling -------------------------------------------------------------------------
    def test_address_calls_use_their_buckets(self):
        _, p, (a, b) = self.subnet()
        aid = self.direct.allocate_address(Domain="vpc")["AllocationId"]
        self.model({"consistency": False, "throttle": {"categories": {"private_ip": {"size": 2, "refill": 0},
                                                                       "mutating": {"size": 1, "refill": 0}}}})
        self.assertEqual([error_of(self.assign(self.ec2, a, p + f"6{i}"))[0] for i in range(3)], [200, 200, 503])
        self.assertEqual(error_of(lambda: self.ec2.unassign_private_ip_addresses(
            NetworkInterfaceId=a, PrivateIpAddresses=[p + "60"]))[0], 200, "its own bucket")
        assoc = lambda: self.ec2.associate_address(AllocationId=aid, NetworkInterfaceId=b,  # noqa: E731
                                                   AllowReassociation=True)
        self.assertEqual([error_of(assoc)[0] for _ in range(2)], [200, 503])
        b_ = self.stats()["buckets"][REGION]
        self.assertEqual({k: v["category"] for k, v in b_.items()},
                         {"AssignPrivateIpAddresses": "private_ip", "UnassignPrivateIpAddresses": "private_ip",
                          "AssociateAddress": "mutating"})
        self.assertEqual(self.model({})["config"]["throttle"]["categories"]["private_ip"], {"size": 100, "refill": 5})
        cats = self.model({})["config"]["throttle"]
        self.assertEqual(cats["actions"]["DescribeNetworkInterfaces"], "unfiltered_describe")


if __name__ == "__main__":
    unittest.main()
