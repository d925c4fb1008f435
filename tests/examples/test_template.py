"""examples/cloudformation.yaml and the standalone IAM and EventBridge examples (issue 16).

Each property is checked on the template as shipped, for the parameter sets that matter, and
each check is also run on a copy broken in that one way, where it must report the problem.

    .venv/bin/python -m unittest discover -s tests/examples -v
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

import cfn_template as cfn
import template_checks as chk

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TEMPLATE = EXAMPLES / "cloudformation.yaml"
SCRIPT = EXAMPLES / "persist-vip" / "persist-vip.sh"
STACK = "iris-mirror"
VIP = "192.168.240.10"


def load_text(text):
    return cfn.load(text)


class Template(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text = TEMPLATE.read_text()
        cls.tpl = cfn.load(cls.text)
        cls.script = SCRIPT.read_text()

    def render(self, tpl=None, **params):
        return cfn.render(self.tpl if tpl is None else tpl, params, stack_name=STACK)

    def render_checked(self, **params):
        """render, refusing a value that does not match its parameter's AllowedPattern (as CloudFormation does)."""
        for name, value in params.items():
            pattern = self.tpl["Parameters"][name].get("AllowedPattern")
            if pattern is not None and not re.fullmatch(pattern, value):
                raise cfn.RenderError(f"{name}={value} does not match {pattern}")
        return self.render(**params)

    def broken(self):
        return copy.deepcopy(self.tpl)

    @staticmethod
    def statement(t, sid):
        """The member role's statement with this Sid in a raw template (inside its !If, if any)."""
        for s in t["Resources"]["MemberRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
            s = s["Fn::If"][1] if "Fn::If" in s else s
            if s.get("Sid") == sid:
                return s
        raise KeyError(sid)

    def assertHolds(self, problems):
        self.assertEqual(problems, [], "\n".join(problems))

    def assertReports(self, problems, pattern):
        self.assertTrue(problems, "the check found nothing wrong in a broken template")
        self.assertTrue(any(re.search(pattern, p) for p in problems), f"no problem matching {pattern!r}: {problems}")

    # --- the template as shipped, every property, for the parameter sets that matter

    def test_every_parameter_set_renders(self):
        for params in ({}, {"Connectivity": "nat"}, {"AllowRelease": "true"}, {"TaggedTablesInVpc": "true"},
                       {"AlertEmail": "ops@example.com", "ArtifactBucket": "kits"}, {"ArbiterAzIndex": "1"},
                       {"RouteTableTag": "prod", "AmiId": "ami-0123456789abcdef0"}):
            with self.subTest(params=params):
                r = self.render(**params)
                self.assertIn("MemberA", r.resources)

    def test_interface_endpoints_by_default(self):
        self.assertHolds(chk.check_endpoints(self.render()))
        self.assertHolds(chk.check_connectivity(self.render(), "endpoints"))

    def test_nat_gateways_behind_the_parameter(self):
        self.assertHolds(chk.check_connectivity(self.render(Connectivity="nat"), "nat"))
        for name, res in self.tpl["Resources"].items():
            if res["Type"] in chk.NAT_TYPES:
                # The internet gateway also serves VipMode=eip, the VIP's Elastic IP only that.
                want = {"InternetGateway": "UseInternetGateway", "GatewayAttachment": "UseInternetGateway",
                        "VipEip": "EipMode"}.get(name, "UseNat")
                self.assertEqual(res.get("Condition"), want, f"{name} must depend on {want}")
        self.assertEqual(self.tpl["Conditions"]["UseInternetGateway"],
                         {"Fn::Or": [{"Condition": "UseNat"}, {"Condition": "EipMode"}]})

    def test_no_eth0_anywhere(self):
        for path in (TEMPLATE, SCRIPT, EXAMPLES / "persist-vip" / "embed.py"):
            with self.subTest(path=path.name):
                self.assertHolds(chk.check_no_eth0(path.read_text()))

    def test_partition_from_the_pseudo_parameter(self):
        for params in ({}, {"Connectivity": "nat", "AlertEmail": "a@example.com", "ArtifactBucket": "b",
                            "TaggedTablesInVpc": "true", "AllowRelease": "true"}):
            with self.subTest(params=params):
                self.assertHolds(chk.check_partition(self.text, self.render(**params)))

    def test_route_mutations_scoped_to_the_stacks_tables_in_its_vpc(self):
        for params in ({}, {"AllowRelease": "true"}, {"TaggedTablesInVpc": "true"}):
            with self.subTest(params=params):
                self.assertHolds(chk.check_route_permissions(self.render(**params)))

    def test_deny_on_the_irisvip_tag(self):
        self.assertHolds(chk.check_tag_deny(self.render()))

    def test_tag_value_defaults_to_the_stack_name(self):
        self.assertHolds(chk.check_tag_value(self.render(), STACK))
        self.assertHolds(chk.check_tag_value(self.render(RouteTableTag="prod"), "prod"))
        self.assertEqual(self.render().outputs["IrisVipConfig"], f"vip={VIP}/32;route_table_tag=irisvip={STACK}")
        self.assertEqual(self.render().outputs["CheckCommand"],
                         f"irisvip check --vip {VIP} --route-table-tag irisvip={STACK}")

    def test_delete_route_only_where_release_is_enabled(self):
        self.assertHolds(chk.check_delete_route(self.render(), release_enabled=False))
        self.assertHolds(chk.check_delete_route(self.render(AllowRelease="true"), release_enabled=True))
        self.assertHolds(chk.check_delete_route(self.render(AllowRelease="true", TaggedTablesInVpc="true"),
                                                release_enabled=True))

    def test_members_own_their_network_interfaces(self):
        self.assertHolds(chk.check_members_own_enis(self.render()))

    def test_no_vip_route_resource(self):
        self.assertHolds(chk.check_vip_route(self.render(), VIP))

    def test_imdsv2_required(self):
        self.assertHolds(chk.check_imdsv2(self.render()))

    def test_azs_that_two_az_regions_have(self):
        self.assertHolds(chk.check_azs(self.render()))
        self.assertHolds(chk.check_azs(self.render(ArbiterAzIndex="1")))
        # The third AZ only when asked for, and then only the arbiter.
        problems = chk.check_azs(self.render(ArbiterAzIndex="2"))
        self.assertEqual(problems, ["SubnetArbiter: in <az2>, which two-AZ regions lack"])

    def test_every_instance_reachable_through_session_manager(self):
        for mode in ("endpoints", "nat"):
            with self.subTest(mode=mode):
                self.assertHolds(chk.check_ssm(self.render(Connectivity=mode)))

    def test_user_data_carries_persist_vip(self):
        self.assertHolds(chk.check_user_data(self.render(), self.script, VIP))
        self.assertHolds(chk.check_user_data(self.render(VipAddress="192.168.77.5"), self.script, "192.168.77.5"))
        check = subprocess.run([sys.executable, str(EXAMPLES / "persist-vip" / "embed.py"), "--check"],
                               capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_user_data_within_the_ec2_limit(self):
        # EC2 takes at most 16 KB of user data before base64; the template body 51,200 bytes
        # without an S3 bucket (aws cloudformation deploy without --s3-bucket).
        for name, res in chk.members(self.render()).items():
            self.assertLess(len(res["Properties"]["UserData"].encode()), 16 * 1024, name)
        self.assertLess(len(self.text.encode()), 51200)

    def test_alert_behind_the_parameter(self):
        self.assertEqual(self.render().of_type("AWS::Events::Rule"), {})
        self.assertHolds(chk.check_alert(self.render(AlertEmail="ops@example.com"), VIP))

    def test_alert_pattern_matches_what_it_should(self):
        r = self.render(AlertEmail="ops@example.com")
        (rule,) = r.of_type("AWS::Events::Rule").values()
        pattern = rule["Properties"]["EventPattern"]
        role = "{getatt:MemberRole.Arn}"
        for call, dest, who, alert in (
                ("ReplaceRoute", {"destinationCidrBlock": f"{VIP}/32"}, role, False),
                ("CreateRoute", {"destinationCidrBlock": f"{VIP}/32"}, role, False),
                ("ReplaceRoute", {"destinationCidrBlock": "0.0.0.0/0"}, role, True),
                ("DeleteRoute", {"destinationCidrBlock": "10.0.0.0/16"}, role, True),
                ("CreateRoute", {"destinationIpv6CidrBlock": "::/0"}, role, True),
                ("CreateRoute", {"destinationPrefixListId": "pl-1"}, role, True),
                ("ReplaceRoute", {"destinationCidrBlock": "0.0.0.0/0"}, "arn:aws:iam::1:role/admin", False),
                ("DescribeRouteTables", {}, role, False)):
            event = {"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail",
                     "detail": {"eventSource": "ec2.amazonaws.com", "eventName": call,
                                "userIdentity": {"sessionContext": {"sessionIssuer": {"arn": who}}},
                                "requestParameters": dict(dest, routeTableId="rtb-1")}}
            with self.subTest(call=call, dest=dest, who=who):
                self.assertEqual(chk.event_matches(pattern, event), alert)

    def test_cfn_lint_clean(self):
        lint = shutil.which("cfn-lint", path=os.path.dirname(sys.executable)) or shutil.which("cfn-lint")
        if lint is None:
            self.skipTest("cfn-lint not installed (make venv)")
        run = subprocess.run([lint, str(TEMPLATE)], capture_output=True, text=True, timeout=300)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    # --- each check on a copy broken that way

    def test_broken_endpoint_private_dns_is_caught(self):
        t = self.broken()
        t["Resources"]["SsmMessagesEndpoint"]["Properties"]["PrivateDnsEnabled"] = False
        self.assertReports(chk.check_endpoints(self.render(t)), r"SsmMessagesEndpoint: PrivateDnsEnabled")

    def test_missing_endpoint_is_caught(self):
        t = self.broken()
        del t["Resources"]["Ec2MessagesEndpoint"]
        self.assertReports(chk.check_endpoints(self.render(t)), r"ec2messages: 0 endpoints")

    def test_endpoint_security_group_without_443_is_caught(self):
        t = self.broken()
        t["Resources"]["EndpointSecurityGroup"]["Properties"]["SecurityGroupIngress"][0]["FromPort"] = 80
        self.assertReports(chk.check_endpoints(self.render(t)), r"tcp/443")

    def test_eth0_is_caught(self):
        self.assertReports(chk.check_no_eth0(self.text.replace("labelled <dev>:1", "labelled eth0:1", 1)), r"eth0")

    def test_hard_coded_partition_is_caught(self):
        text = self.text.replace("arn:${AWS::Partition}:iam::aws:policy", "arn:aws:iam::aws:policy", 1)
        self.assertReports(chk.check_partition(text, self.render(load_text(text))), r"hard-coded partition")

    def test_route_statement_without_vpc_condition_is_caught(self):
        t = self.broken()
        stmt = self.statement(t, "MoveTheVipRouteInThisStacksTables")
        del stmt["Condition"]
        self.assertReports(chk.check_route_permissions(self.render(t)), r"without StringEquals ec2:Vpc")

    def test_route_statement_on_every_table_is_caught(self):
        t = self.broken()
        stmt = self.statement(t, "MoveTheVipRouteInThisStacksTables")
        stmt["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:route-table/*"}
        self.assertReports(chk.check_route_permissions(self.render(t)), r"route-table/\* without")

    def test_route_statement_missing_a_table_is_caught(self):
        t = self.broken()
        stmt = self.statement(t, "MoveTheVipRouteInThisStacksTables")
        stmt["Resource"] = stmt["Resource"][:1]
        self.assertReports(chk.check_route_permissions(self.render(t)), r"tagged tables are")

    def test_missing_tag_deny_is_caught(self):
        t = self.broken()
        doc = t["Resources"]["MemberRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        doc["Statement"] = [s for s in doc["Statement"] if not (isinstance(s, dict) and s.get("Sid") == "NeverTouchTheIrisvipTag")]
        self.assertReports(chk.check_tag_deny(self.render(t)), r"no Deny of ec2:CreateTags")

    def test_fixed_tag_value_is_caught(self):
        t = self.broken()
        t["Parameters"]["RouteTableTag"]["Default"] = "prod"
        self.assertReports(chk.check_tag_value(self.render(t), STACK), r"irisvip=prod, want iris-mirror")

    def test_unconditional_delete_route_is_caught(self):
        t = self.broken()
        stmt = self.statement(t, "MoveTheVipRouteInThisStacksTables")
        stmt["Action"] = ["ec2:ReplaceRoute", "ec2:CreateRoute", "ec2:DeleteRoute"]
        self.assertReports(chk.check_delete_route(self.render(t), release_enabled=False), r"DeleteRoute granted")

    def test_unconditional_nat_gateway_is_caught(self):
        t = self.broken()
        for name in ("PublicSubnetA", "NatEipA", "NatGatewayA"):
            del t["Resources"][name]["Condition"]
        t["Resources"]["NatGatewayA"]["Properties"]["SubnetId"] = {"Ref": "SubnetA"}
        self.assertReports(chk.check_connectivity(self.render(t), "endpoints"), r"NatGatewayA exists without")

    def test_single_nat_gateway_is_caught(self):
        t = self.broken()
        t["Resources"]["NatRouteB"]["Properties"]["NatGatewayId"] = {"Ref": "NatGatewayA"}
        self.assertReports(chk.check_connectivity(self.render(t, Connectivity="nat"), "nat"),
                           r"RouteTableB: members in \['<az1>'\] leave through a NAT gateway in <az0>")

    def test_separate_eni_is_caught(self):
        t = self.broken()
        t["Resources"]["MemberAEni"] = {"Type": "AWS::EC2::NetworkInterface",
                                       "Properties": {"SubnetId": {"Ref": "SubnetA"}, "SourceDestCheck": False}}
        t["Resources"]["MemberA"]["Properties"]["NetworkInterfaces"] = [
            {"NetworkInterfaceId": {"Ref": "MemberAEni"}, "DeviceIndex": "0"}]
        problems = chk.check_members_own_enis(self.render(t))
        self.assertReports(problems, r"MemberAEni: a separately created network interface")
        self.assertReports(problems, r"MemberA: want one NetworkInterfaces entry")

    def test_source_dest_check_on_is_caught(self):
        t = self.broken()
        del t["Resources"]["MemberB"]["Properties"]["SourceDestCheck"]
        self.assertReports(chk.check_members_own_enis(self.render(t)), r"MemberB: SourceDestCheck")

    def test_vip_route_owned_by_cloudformation_is_caught(self):
        t = self.broken()
        route = {"Type": "AWS::EC2::Route",
                 "Properties": {"RouteTableId": {"Ref": "RouteTableA"},
                                "DestinationCidrBlock": {"Fn::Sub": "${VipAddress}/32"},
                                "InstanceId": {"Ref": "MemberA"}}}
        t["Resources"]["VipRoute"] = route
        self.assertReports(chk.check_vip_route(self.render(t), VIP), r"VipRoute: CloudFormation owns")
        route.update(DeletionPolicy="Retain", UpdateReplacePolicy="Retain")
        self.assertHolds(chk.check_vip_route(self.render(t), VIP))

    def test_imdsv1_is_caught(self):
        t = self.broken()
        t["Resources"]["Arbiter"]["Properties"]["MetadataOptions"]["HttpTokens"] = "optional"
        self.assertReports(chk.check_imdsv2(self.render(t)), r"Arbiter: IMDSv2 not required")

    def test_third_az_for_a_member_is_caught(self):
        t = self.broken()
        t["Resources"]["SubnetB"]["Properties"]["AvailabilityZone"] = {"Fn::Select": [2, {"Fn::GetAZs": ""}]}
        self.assertReports(chk.check_azs(self.render(t)), r"SubnetB: in <az2>")

    def test_arbiter_without_profile_is_caught(self):
        t = self.broken()
        del t["Resources"]["Arbiter"]["Properties"]["IamInstanceProfile"]
        self.assertReports(chk.check_ssm(self.render(t)), r"Arbiter: no instance profile")

    def test_stale_user_data_is_caught(self):
        t = self.broken()
        ud = t["Resources"]["MemberB"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
        ud[4] = ud[4].replace("set -euo pipefail\n", "set -eu\n", 2)
        self.assertReports(chk.check_user_data(self.render(t), self.script, VIP), r"MemberB: user data does not carry")

    def test_alert_on_every_destination_is_caught(self):
        t = self.broken()
        del t["Resources"]["RouteAlertRule"]["Properties"]["EventPattern"]["detail"]["$or"]
        self.assertReports(chk.check_alert(self.render(t, AlertEmail="a@example.com"), VIP), r"anything-but")

    # --- VipMode: route (default), private-ip, eip

    def test_vip_mode_parameter(self):
        spec = self.tpl["Parameters"]["VipMode"]
        self.assertEqual(spec["Default"], "route")
        self.assertEqual(spec["AllowedValues"], ["route", "private-ip", "eip"])
        for mode in ("route", "private-ip", "eip"):
            for release in ("false", "true"):
                with self.subTest(mode=mode, release=release):
                    r = self.render(VipMode=mode, AllowRelease=release)
                    self.assertHolds(chk.check_mode_permissions(r, mode, release == "true"))
                    self.assertHolds(chk.check_members_own_enis(r))
                    self.assertHolds(chk.check_imdsv2(r))
                    self.assertHolds(chk.check_ssm(r))
                    self.assertHolds(chk.check_partition(self.text, r))
                    self.assertHolds(chk.check_tag_deny(r))

    def test_route_mode_is_the_default_and_unchanged(self):
        self.assertEqual(self.render().outputs, self.render(VipMode="route").outputs)
        for name in ("VipReservation", "VipEip", "MemberInternetRouteA", "MemberInternetRouteB"):
            self.assertNotIn(name, self.render().resources)
        self.assertHolds(chk.check_route_permissions(self.render(VipMode="route", TaggedTablesInVpc="true")))

    def test_private_ip_mode(self):
        r = self.render(VipMode="private-ip")
        self.assertHolds(chk.check_private_ip(r, "10.0.1.230"))
        self.assertHolds(chk.check_private_ip(self.render(VipMode="private-ip", PrivateVipAddress="10.0.1.225"), "10.0.1.225"))
        self.assertHolds(chk.check_user_data(r, self.script, "10.0.1.230"))
        self.assertEqual(r.outputs["Vip"], "10.0.1.230")
        self.assertEqual(r.outputs["CheckCommand"], "irisvip check --mode private-ip --vip 10.0.1.230")
        # One subnet, one AZ: said in the parameter's description, and what check_azs then reports.
        self.assertIn("ONE subnet", self.tpl["Parameters"]["VipMode"]["Description"])
        self.assertEqual(chk.check_azs(r), ["members in ['<az0>', '<az0>'], want <az0> and <az1>"])
        self.assertHolds(chk.check_connectivity(r, "endpoints"))
        # The tagged tables stay (subnets need them), the route permissions go.
        self.assertEqual(chk.route_actions(r), set())
        for address in ("10.0.1.223", "10.0.1.240", "10.0.2.230", "192.168.240.10"):
            with self.subTest(address=address), self.assertRaisesRegex(cfn.RenderError, "PrivateVipAddress"):
                self.render_checked(VipMode="private-ip", PrivateVipAddress=address)

    def test_eip_mode(self):
        r = self.render(VipMode="eip")
        self.assertHolds(chk.check_eip(r))
        self.assertHolds(chk.check_connectivity(r, "endpoints", "eip"))
        self.assertHolds(chk.check_azs(r))
        self.assertHolds(chk.check_user_data(r, self.script, VIP, runs=False))
        self.assertEqual(r.outputs["Vip"], "{ref:VipEip}")
        self.assertEqual(r.outputs["CheckCommand"], "irisvip check --mode eip --allocation-id {getatt:VipEip.AllocationId}")
        self.assertNotIn("VipAllocationId", self.render().outputs)
        self.assertEqual(chk.route_actions(r), set())

    def test_eip_mode_refuses_nat(self):
        with self.assertRaisesRegex(cfn.RenderError, "rule EipNeedsEndpoints"):
            self.render(VipMode="eip", Connectivity="nat")
        self.render(VipMode="route", Connectivity="nat")

    def test_statements_agree_with_the_service_authorization_reference(self):
        for params in ({}, {"AllowRelease": "true", "TaggedTablesInVpc": "true"},
                       {"VipMode": "private-ip", "AllowRelease": "true"}, {"VipMode": "eip", "AllowRelease": "true"}):
            with self.subTest(params=params):
                self.assertHolds(chk.check_reference(chk.member_statements(self.render(**params))))

    # broken copies

    def test_route_permission_in_another_mode_is_caught(self):
        t = self.broken()
        t["Resources"]["MemberRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0] = \
            self.statement(t, "MoveTheVipRouteInThisStacksTables")
        self.assertReports(chk.check_mode_permissions(self.render(t, VipMode="eip"), "eip", False), r"may change .*ec2:CreateRoute")

    def test_unassign_without_release_is_caught(self):
        t = self.broken()
        self.statement(t, "MoveTheVipAddressInTheMembersSubnet")["Action"] = ["ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
        self.assertReports(chk.check_mode_permissions(self.render(t, VipMode="private-ip"), "private-ip", False),
                           r"UnassignPrivateIpAddresses")

    def test_private_ip_statement_without_subnet_is_caught(self):
        t = self.broken()
        del self.statement(t, "MoveTheVipAddressInTheMembersSubnet")["Condition"]["StringEquals"]["ec2:Subnet"]
        self.assertReports(chk.check_mode_permissions(self.render(t, VipMode="private-ip"), "private-ip", False),
                           r"without StringEquals ec2:Subnet")

    def test_vpc_condition_on_the_elastic_ip_is_caught(self):
        t = self.broken()
        s = self.statement(t, "MoveThisStacksElasticIp")
        s["Condition"] = copy.deepcopy(self.statement(t, "OntoTheMembersInterfacesInThisVpc")["Condition"])
        self.assertReports(chk.check_mode_permissions(self.render(t, VipMode="eip"), "eip", False),
                           r"elastic-ip has no condition key ec2:Vpc")

    def test_elastic_ip_on_every_address_is_caught(self):
        t = self.broken()
        self.statement(t, "MoveThisStacksElasticIp")["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:elastic-ip/*"}
        self.assertReports(chk.check_mode_permissions(self.render(t, VipMode="eip"), "eip", False), r"elastic-ip/\*")

    def test_members_in_two_subnets_for_private_ip_is_caught(self):
        t = self.broken()
        t["Resources"]["MemberB"]["Properties"]["NetworkInterfaces"][0]["SubnetId"] = {"Ref": "SubnetB"}
        self.assertReports(chk.check_private_ip(self.render(t, VipMode="private-ip"), "10.0.1.230"), r"needs one subnet")

    def test_vip_outside_the_reservation_is_caught(self):
        t = self.broken()
        t["Resources"]["VipReservation"]["Properties"]["Cidr"] = "10.0.1.208/28"
        self.assertReports(chk.check_private_ip(self.render(t, VipMode="private-ip"), "10.0.1.230"), r"no explicit CIDR reservation")
        t = self.broken()
        t["Resources"]["VipReservation"]["Properties"]["ReservationType"] = "prefix"
        self.assertReports(chk.check_private_ip(self.render(t, VipMode="private-ip"), "10.0.1.230"), r"no explicit CIDR reservation")

    def test_eip_associated_by_cloudformation_is_caught(self):
        t = self.broken()
        t["Resources"]["VipEip"]["Properties"]["InstanceId"] = {"Ref": "MemberA"}
        self.assertReports(chk.check_eip(self.render(t, VipMode="eip")), r"CloudFormation associates it")
        t = self.broken()
        t["Resources"]["VipEipAssociation"] = {"Type": "AWS::EC2::EIPAssociation", "Condition": "EipMode",
                                               "Properties": {"AllocationId": {"Fn::GetAtt": ["VipEip", "AllocationId"]},
                                                              "InstanceId": {"Ref": "MemberA"}}}
        self.assertReports(chk.check_eip(self.render(t, VipMode="eip")), r"EIPAssociation")

    def test_eip_without_internet_route_is_caught(self):
        t = self.broken()
        del t["Resources"]["MemberInternetRouteB"]
        self.assertReports(chk.check_eip(self.render(t, VipMode="eip")), r"RouteTableB: the members' default route")

    def test_eip_config_without_allocation_is_caught(self):
        t = self.broken()
        t["Outputs"]["IrisVipConfig"]["Value"]["Fn::If"][2]["Fn::If"][2] = "mode=eip"
        self.assertReports(chk.check_eip(self.render(t, VipMode="eip")), r"IrisVipConfig is 'mode=eip'")

    def test_eip_user_data_that_persists_is_caught(self):
        t = self.broken()
        t["Resources"]["MemberA"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Join"][1][3] = ""
        self.assertReports(chk.check_user_data(self.render(t, VipMode="eip"), self.script, VIP, runs=False),
                           r"MemberA: user data runs persist-vip.sh")

    def test_action_on_a_resource_type_it_does_not_authorize_is_caught(self):
        problems = chk.check_reference([{"Sid": "X", "Effect": "Allow", "Action": "ec2:AssignPrivateIpAddresses",
                                         "Resource": "arn:PARTITION:ec2:REGION:ACCOUNT_ID:subnet/SUBNET_ID"}])
        self.assertReports(problems, r"does not authorize subnet")
        problems = chk.check_reference([{"Sid": "X", "Effect": "Allow", "Action": "ec2:DescribeAddresses",
                                         "Resource": "arn:PARTITION:ec2:REGION:ACCOUNT_ID:elastic-ip/ALLOCATION_ID"}])
        self.assertReports(problems, r"takes no resource type")
        problems = chk.check_reference([{"Sid": "X", "Effect": "Allow", "Action": "ec2:AssociateAddress", "Resource": "*"}])
        self.assertReports(problems, r"not least privilege")

    def test_renderer_refuses_a_ref_to_a_resource_left_out(self):
        t = self.broken()
        t["Resources"]["MemberA"]["Properties"]["SubnetIdForTest"] = {"Ref": "PublicSubnetA"}
        with self.assertRaisesRegex(cfn.RenderError, "PublicSubnetA, which condition UseNat leaves out"):
            self.render(t)


class StandalonePolicies(unittest.TestCase):
    """examples/iam-policy.json (+ -release) mirror the template's statements for other setups."""

    @classmethod
    def setUpClass(cls):
        cls.policy = json.loads((EXAMPLES / "iam-policy.json").read_text())
        cls.release = json.loads((EXAMPLES / "iam-policy-release.json").read_text())
        cls.pattern = json.loads((EXAMPLES / "eventbridge-route-alert.json").read_text())

    def test_no_partition_typed_in(self):
        for name in ("iam-policy.json", "iam-policy-release.json", "eventbridge-route-alert.json"):
            with self.subTest(name=name):
                self.assertNotRegex((EXAMPLES / name).read_text(), r"arn:aws[a-z-]*:")

    def test_route_statement_scoped_by_table_and_vpc(self):
        for doc, actions in ((self.policy, {"ec2:ReplaceRoute", "ec2:CreateRoute"}),
                             (self.release, {"ec2:DeleteRoute"})):
            routes = [s for s in doc["Statement"] if set(chk.listify(s["Action"])) & chk.ROUTE_ACTIONS]
            self.assertEqual(len(routes), 1)
            s = routes[0]
            self.assertEqual(set(chk.listify(s["Action"])), actions)
            for arn in s["Resource"]:
                self.assertRegex(arn, r"^arn:PARTITION:ec2:REGION:ACCOUNT_ID:route-table/RTB_ID_\d$")
            self.assertEqual(s["Condition"], {"StringEquals": {"ec2:Vpc": "arn:PARTITION:ec2:REGION:ACCOUNT_ID:vpc/VPC_ID"}})

    def test_same_statements_as_the_template(self):
        r = cfn.render(cfn.load(TEMPLATE.read_text()), {}, STACK)
        stmts = chk.statements_of(r, "MemberRole")
        by_sid = {s.get("Sid"): s for s in stmts}
        for s in self.policy["Statement"]:
            with self.subTest(sid=s["Sid"]):
                if s["Sid"] == "MoveTheVipRouteInTheseTables":
                    self.assertEqual(chk.listify(s["Action"]), by_sid["MoveTheVipRouteInThisStacksTables"]["Action"])
                    continue
                self.assertEqual(s, by_sid[s["Sid"]])

    def test_alert_pattern_is_the_templates(self):
        r = cfn.render(cfn.load(TEMPLATE.read_text()), {"AlertEmail": "a@example.com"}, STACK)
        (rule,) = r.of_type("AWS::Events::Rule").values()
        filled = json.loads(json.dumps(self.pattern)
                            .replace("arn:PARTITION:iam::ACCOUNT_ID:role/MEMBER_ROLE_NAME", "{getatt:MemberRole.Arn}")
                            .replace("VIP_ADDRESS", VIP))
        self.assertEqual(filled, rule["Properties"]["EventPattern"])



class AddressPolicies(unittest.TestCase):
    """examples/iam-private-ip.json and examples/iam-eip.json: least privilege per mode, checked
    against the service authorization reference (cfn-lint's copy of it)."""

    ENI = r"^arn:PARTITION:ec2:REGION:ACCOUNT_ID:network-interface/ENI_ID_\d$"
    VPC = "arn:PARTITION:ec2:REGION:ACCOUNT_ID:vpc/VPC_ID"
    SUBNET = "arn:PARTITION:ec2:REGION:ACCOUNT_ID:subnet/SUBNET_ID"
    EIP = "arn:PARTITION:ec2:REGION:ACCOUNT_ID:elastic-ip/ALLOCATION_ID"

    @classmethod
    def setUpClass(cls):
        cls.docs = {mode: json.loads((EXAMPLES / f"iam-{mode}.json").read_text()) for mode in ("private-ip", "eip")}

    def test_no_partition_typed_in(self):
        for mode in self.docs:
            with self.subTest(mode=mode):
                self.assertNotRegex((EXAMPLES / f"iam-{mode}.json").read_text(), r"arn:aws[a-z-]*:")

    def test_statements_agree_with_the_reference(self):
        for name in ("iam-private-ip.json", "iam-eip.json", "iam-policy.json", "iam-policy-release.json",
                     "iam-shared-vpc-owner.json"):
            with self.subTest(name=name):
                doc = json.loads((EXAMPLES / name).read_text())
                self.assertEqual(set(doc), {"Version", "Statement"}, "IAM refuses other top-level keys")
                self.assertEqual(chk.check_reference(doc["Statement"]), [])

    def test_actions_per_mode(self):
        for mode, doc in self.docs.items():
            with self.subTest(mode=mode):
                changes, reads = chk.MODE_ACTIONS[mode]
                actions = {a for s in doc["Statement"] for a in chk.listify(s["Action"])}
                self.assertEqual(actions, changes | reads)
                self.assertTrue(all(s["Effect"] == "Allow" for s in doc["Statement"]))
                for s in doc["Statement"]:
                    acts = set(chk.listify(s["Action"]))
                    if acts & chk.RELEASE_ACTIONS:
                        # The release action in statements of its own, to drop on members that never release.
                        self.assertEqual(acts, acts & chk.RELEASE_ACTIONS, s["Sid"])
                    if acts <= reads:
                        self.assertEqual(s["Resource"], "*", s["Sid"])

    def test_private_ip_scoped_to_the_members_interfaces_in_their_subnet(self):
        for s in self.docs["private-ip"]["Statement"]:
            if set(chk.listify(s["Action"])) & chk.PRIVATE_IP_ACTIONS:
                with self.subTest(sid=s["Sid"]):
                    for arn in s["Resource"]:
                        self.assertRegex(arn, self.ENI)
                    self.assertEqual(s["Condition"], {"StringEquals": {"ec2:Vpc": self.VPC, "ec2:Subnet": self.SUBNET}})

    def test_eip_scoped_to_the_allocation_and_the_members_interfaces(self):
        seen = set()
        for s in self.docs["eip"]["Statement"]:
            acts = set(chk.listify(s["Action"])) & chk.EIP_ACTIONS
            if not acts:
                continue
            with self.subTest(sid=s["Sid"]):
                resources = chk.listify(s["Resource"])
                if resources == [self.EIP]:
                    self.assertNotIn("Condition", s)
                    seen |= {(a, "elastic-ip") for a in acts}
                else:
                    for arn in resources:
                        self.assertRegex(arn, self.ENI)
                    self.assertEqual(s["Condition"], {"StringEquals": {"ec2:Vpc": self.VPC}})
                    seen |= {(a, "network-interface") for a in acts}
        # Each action is allowed on both resource types it authorizes here (instance: the library
        # associates by network interface, never by instance id).
        self.assertEqual(seen, {(a, k) for a in chk.EIP_ACTIONS for k in ("elastic-ip", "network-interface")})

    def test_same_actions_as_the_template(self):
        for mode, doc in self.docs.items():
            with self.subTest(mode=mode):
                r = cfn.render(cfn.load(TEMPLATE.read_text()), {"VipMode": mode, "AllowRelease": "true"}, STACK)
                granted = {a for s in chk.member_statements(r) if s["Effect"] == "Allow" for a in chk.listify(s["Action"])
                           if a.startswith("ec2:")}
                self.assertEqual(granted, {a for s in doc["Statement"] for a in chk.listify(s["Action"])})

    def test_broken_policies_are_caught(self):
        doc = copy.deepcopy(self.docs["eip"])
        doc["Statement"][0]["Condition"] = {"StringEquals": {"ec2:Vpc": self.VPC}}
        self.assertTrue(any("elastic-ip has no condition key ec2:Vpc" in p for p in chk.check_reference(doc["Statement"])))
        doc = copy.deepcopy(self.docs["private-ip"])
        doc["Statement"][0]["Resource"] = "*"
        self.assertTrue(any("not least privilege" in p for p in chk.check_reference(doc["Statement"])))
        doc = copy.deepcopy(self.docs["private-ip"])
        doc["Statement"][0]["Condition"]["StringEquals"]["ec2:SubnetID"] = "subnet-1"
        self.assertTrue(any("no condition key ec2:SubnetID" in p for p in chk.check_reference(doc["Statement"])))

if __name__ == "__main__":
    unittest.main()
