"""The properties issue 16 asks of examples/cloudformation.yaml, as checks.

Each check takes a rendered template (cfn_template.Rendered) or the raw text and returns a list
of problems, empty when the property holds, so that a test can also run it on a broken copy
and see it fail.
"""

import ipaddress
import json
import re
from pathlib import Path

from cfn_template import strings

ENDPOINT_SERVICES = ("ec2", "sts", "ssm", "ssmmessages", "ec2messages")
ROUTE_ACTIONS = {"ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute"}
PRIVATE_IP_ACTIONS = {"ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}
EIP_ACTIONS = {"ec2:AssociateAddress", "ec2:DisassociateAddress"}
VIP_ACTIONS = ROUTE_ACTIONS | PRIVATE_IP_ACTIONS | EIP_ACTIONS
RELEASE_ACTIONS = {"ec2:DeleteRoute", "ec2:UnassignPrivateIpAddresses", "ec2:DisassociateAddress"}
# What each VipMode may change and read (release actions only with AllowRelease).
MODE_ACTIONS = {
    "route": ({"ec2:ReplaceRoute", "ec2:CreateRoute", "ec2:DeleteRoute"},
              {"ec2:DescribeRouteTables", "ec2:DescribeVpcs", "ec2:DescribeNetworkInterfaces"}),
    "private-ip": (PRIVATE_IP_ACTIONS, {"ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"}),
    "eip": (EIP_ACTIONS, {"ec2:DescribeAddresses", "ec2:DescribeNetworkInterfaces"}),
}
TAG_KEY = "irisvip"
PARTITION = "<AWS.Partition>"
SCOPE = f"arn:{PARTITION}:ec2:<AWS.Region>:<AWS.AccountId>"
HEREDOC = re.compile(r"<<'IRISVIP_PERSIST_VIP'\n(.*?)\nIRISVIP_PERSIST_VIP\n", re.S)


def listify(x):
    return x if isinstance(x, list) else [x]


def ref_name(value):
    m = re.fullmatch(r"\{ref:([A-Za-z0-9]+)\}", str(value))
    return m.group(1) if m else None


def members(r):
    """Instances that carry the VIP: those whose profile's role may move it (routes or addresses)."""
    return {n: res for n, res in r.of_type("AWS::EC2::Instance").items()
            if any(s["Effect"] == "Allow" and VIP_ACTIONS & set(listify(s["Action"]))
                   for s in statements_of(r, role_of(r, res)))}


def role_of(r, instance):
    profile = ref_name(instance["Properties"].get("IamInstanceProfile", ""))
    if profile is None or profile not in r.resources:
        return None
    roles = r.resources[profile]["Properties"].get("Roles", [])
    return ref_name(roles[0]) if roles else None


def statements_of(r, role):
    """Every statement of the role's inline policies and of AWS::IAM::Policy resources on it."""
    if role is None or role not in r.resources:
        return []
    out = []
    for policy in r.resources[role]["Properties"].get("Policies", []):
        out += listify(policy["PolicyDocument"]["Statement"])
    for res in r.of_type("AWS::IAM::Policy").values():
        if f"{{ref:{role}}}" in res["Properties"].get("Roles", []):
            out += listify(res["Properties"]["PolicyDocument"]["Statement"])
    return out


def tag_value(resource, key=TAG_KEY):
    for tag in resource["Properties"].get("Tags", []):
        if tag["Key"] == key:
            return tag["Value"]
    return None


def check_endpoints(r):
    """The five interface endpoints, private DNS on, in both member AZs, 443 from the VPC."""
    problems = []
    vpc = r.resources.get("Vpc", {}).get("Properties", {})
    if vpc.get("EnableDnsSupport") is not True or vpc.get("EnableDnsHostnames") is not True:
        problems.append("private DNS of endpoints needs EnableDnsSupport and EnableDnsHostnames on the VPC")
    endpoints = r.of_type("AWS::EC2::VPCEndpoint")
    for svc in ENDPOINT_SERVICES:
        name = f"com.amazonaws.<AWS.Region>.{svc}"
        found = [(n, e["Properties"]) for n, e in endpoints.items() if e["Properties"].get("ServiceName") == name]
        if len(found) != 1:
            problems.append(f"{svc}: {len(found)} endpoints, want 1")
            continue
        n, p = found[0]
        if p.get("VpcEndpointType") != "Interface":
            problems.append(f"{n}: not an Interface endpoint")
        if p.get("PrivateDnsEnabled") is not True:
            problems.append(f"{n}: PrivateDnsEnabled is not true")
        subnets = [ref_name(s) for s in p.get("SubnetIds", [])]
        azs = {r.resources[s]["Properties"]["AvailabilityZone"] for s in subnets if s in r.resources}
        if len(azs) < 2:
            problems.append(f"{n}: network interfaces in {len(azs)} AZ(s), want both member AZs")
        groups = [ref_name(g) for g in p.get("SecurityGroupIds", [])]
        if not any(_allows_443_from_vpc(r, g) for g in groups):
            problems.append(f"{n}: no security group allows tcp/443 from the VPC CIDR")
    return problems


def _allows_443_from_vpc(r, group):
    res = r.resources.get(group)
    if res is None:
        return False
    vpc_cidrs = {"{getatt:Vpc.CidrBlock}", r.resources["Vpc"]["Properties"]["CidrBlock"]}
    return any(rule.get("IpProtocol") == "tcp" and rule.get("FromPort") == 443
               and rule.get("ToPort") == 443 and rule.get("CidrIp") in vpc_cidrs
               for rule in res["Properties"].get("SecurityGroupIngress", []))


def check_no_eth0(text):
    return [f"line {i}: {line.strip()}" for i, line in enumerate(text.splitlines(), 1)
            if "eth0" in line.lower()]


def check_partition(text, r):
    """No partition typed by hand: every ARN gets its partition from ${AWS::Partition}."""
    problems = [f"line {i}: hard-coded partition: {line.strip()}"
                for i, line in enumerate(text.splitlines(), 1) if re.search(r"arn:aws[a-z-]*:", line)]
    for s in strings({"r": r.resources, "o": r.outputs}):
        for arn in re.findall(r"arn:[^:\s\"]*:", s):
            if arn != f"arn:{PARTITION}:":
                problems.append(f"ARN with partition {arn!r} in {s!r}")
    return problems


def tagged_tables(r):
    return {n for n, t in r.of_type("AWS::EC2::RouteTable").items() if tag_value(t) is not None}


def check_route_permissions(r):
    """Route mutations only on this stack's route-table ARNs (or, if allowed, this VPC's tables
    with the stack's tag), always with the ec2:Vpc condition; every tagged table covered."""
    problems = []
    vpc_arn = f"{SCOPE}:vpc/{{ref:Vpc}}"
    tables = tagged_tables(r)
    ms = members(r)
    if not ms:
        return ["no instance may change routes"]
    for m, res in ms.items():
        covered = set()
        for s in statements_of(r, role_of(r, res)):
            actions = set(listify(s["Action"]))
            if s["Effect"] != "Allow" or not actions & ROUTE_ACTIONS:
                continue
            if actions - ROUTE_ACTIONS:
                problems.append(f"{m}: {sorted(actions - ROUTE_ACTIONS)} in a route statement")
            cond = s.get("Condition", {})
            if set(cond) != {"StringEquals"} or cond["StringEquals"].get("ec2:Vpc") != vpc_arn:
                problems.append(f"{m}: route statement {s.get('Sid')} without StringEquals ec2:Vpc = {vpc_arn}")
            for arn in listify(s["Resource"]):
                m_arn = re.fullmatch(re.escape(SCOPE) + r":route-table/(.+)", str(arn))
                if m_arn is None:
                    problems.append(f"{m}: route actions on {arn!r}, not a route table of this stack")
                elif m_arn.group(1) == "*":
                    tag = cond.get("StringEquals", {}).get(f"ec2:ResourceTag/{TAG_KEY}")
                    if tag is None or tag not in {tag_value(r.resources[t]) for t in tables}:
                        problems.append(f"{m}: route-table/* without the stack's {TAG_KEY} tag condition")
                elif ref_name(m_arn.group(1)) in tables:
                    covered.add(ref_name(m_arn.group(1)))
                else:
                    problems.append(f"{m}: route actions on {arn!r}, not a tagged table of this stack")
        if covered != tables:
            problems.append(f"{m}: may change routes in {sorted(covered)}, the stack's tagged tables are {sorted(tables)}")
    return problems


def check_tag_deny(r):
    """A Deny on adding, changing or removing the irisvip tag, and on DeleteTags without keys."""
    problems = []
    for m, res in members(r).items():
        ss = statements_of(r, role_of(r, res))
        keyed = [s for s in ss if s["Effect"] == "Deny" and listify(s["Resource"]) == ["*"]
                 and {"ec2:CreateTags", "ec2:DeleteTags"} <= set(listify(s["Action"]))
                 and TAG_KEY in listify(s.get("Condition", {}).get("ForAnyValue:StringEquals", {}).get("aws:TagKeys", []))]
        if not keyed:
            problems.append(f"{m}: no Deny of ec2:CreateTags/ec2:DeleteTags on aws:TagKeys {TAG_KEY}")
        keyless = [s for s in ss if s["Effect"] == "Deny" and listify(s["Resource"]) == ["*"]
                   and "ec2:DeleteTags" in listify(s["Action"])
                   and s.get("Condition", {}).get("Null", {}).get("aws:TagKeys") == "true"]
        if not keyless:
            problems.append(f"{m}: no Deny of ec2:DeleteTags without tag keys (which deletes every tag)")
    return problems


def check_tag_value(r, expected):
    """Every route table the members select carries irisvip=<expected>; the config agrees."""
    problems = []
    tables = tagged_tables(r)
    if not tables:
        problems.append("no route table carries the irisvip tag")
    for n in sorted(tables):
        value = tag_value(r.resources[n])
        if value != expected:
            problems.append(f"{n}: irisvip={value}, want {expected}")
    config = r.outputs.get("IrisVipConfig", "")
    if f"route_table_tag={TAG_KEY}={expected}" not in config:
        problems.append(f"IrisVipConfig {config!r} does not select route_table_tag={TAG_KEY}={expected}")
    return problems


def route_actions(r):
    out = set()
    for res in members(r).values():
        for s in statements_of(r, role_of(r, res)):
            if s["Effect"] == "Allow":
                out |= set(listify(s["Action"])) & ROUTE_ACTIONS
    return out


def check_delete_route(r, release_enabled):
    has = "ec2:DeleteRoute" in route_actions(r)
    if has != release_enabled:
        return [f"ec2:DeleteRoute {'granted' if has else 'missing'} with release {'on' if release_enabled else 'off'}"]
    return []


NAT_TYPES = ("AWS::EC2::NatGateway", "AWS::EC2::InternetGateway", "AWS::EC2::EIP", "AWS::EC2::VPCGatewayAttachment")


def check_connectivity(r, mode, vip_mode="route"):
    """endpoints: interface endpoints and no internet path (VipMode=eip: but the internet gateway
    and the VIP's own Elastic IP); nat: a NAT gateway per member AZ, each member table's default
    route through the NAT gateway of its AZ, no interface endpoints."""
    problems = []
    nat_like = {n for t in NAT_TYPES for n in r.of_type(t)}
    if vip_mode == "eip":
        nat_like -= set(r.of_type("AWS::EC2::InternetGateway")) | set(r.of_type("AWS::EC2::VPCGatewayAttachment")) | {"VipEip"}
    interface = {n for n, e in r.of_type("AWS::EC2::VPCEndpoint").items()
                 if e["Properties"].get("VpcEndpointType") == "Interface"}
    if mode == "endpoints":
        problems += [f"{n} exists without Connectivity=nat" for n in sorted(nat_like)]
        if not interface:
            problems.append("no interface endpoints in the default mode")
        return problems
    if interface:
        problems.append(f"interface endpoints {sorted(interface)} also created with Connectivity=nat")
    nats = r.of_type("AWS::EC2::NatGateway")
    if not r.of_type("AWS::EC2::VPCGatewayAttachment"):
        problems.append("no internet gateway attached")
    for table in sorted(tagged_tables(r)):
        subnets = [ref_name(a["Properties"]["SubnetId"]) for a in r.of_type("AWS::EC2::SubnetRouteTableAssociation").values()
                   if ref_name(a["Properties"]["RouteTableId"]) == table]
        routes = [x["Properties"] for x in r.of_type("AWS::EC2::Route").values()
                  if ref_name(x["Properties"]["RouteTableId"]) == table and x["Properties"].get("DestinationCidrBlock") == "0.0.0.0/0"]
        if len(routes) != 1 or ref_name(routes[0].get("NatGatewayId")) not in nats:
            problems.append(f"{table}: no default route through a NAT gateway")
            continue
        nat = nats[ref_name(routes[0]["NatGatewayId"])]["Properties"]
        nat_az = r.resources[ref_name(nat["SubnetId"])]["Properties"]["AvailabilityZone"]
        member_azs = {r.resources[s]["Properties"]["AvailabilityZone"] for s in subnets
                      if any(_instance_subnet(i) == s for i in members(r).values())}
        if member_azs and member_azs != {nat_az}:
            problems.append(f"{table}: members in {sorted(member_azs)} leave through a NAT gateway in {nat_az}")
    if len({r.resources[ref_name(n["Properties"]["SubnetId"])]["Properties"]["AvailabilityZone"] for n in nats.values()}) < 2:
        problems.append("NAT gateways in fewer than two AZs: one AZ's loss cuts the other member off EC2")
    return problems


def _instance_subnet(instance):
    p = instance["Properties"]
    if "SubnetId" in p:
        return ref_name(p["SubnetId"])
    nics = p.get("NetworkInterfaces", [])
    return ref_name(nics[0].get("SubnetId")) if nics else None


def check_members_own_enis(r):
    """Primary interfaces created with the instances (no separate ENI to deadlock a replacement),
    SourceDestCheck off."""
    problems = [f"{n}: a separately created network interface" for n in r.of_type("AWS::EC2::NetworkInterface")]
    problems += [f"{n}: a network interface attachment" for n in r.of_type("AWS::EC2::NetworkInterfaceAttachment")]
    ms = members(r)
    if len(ms) != 2:
        problems.append(f"{len(ms)} members, want 2")
    for n, res in ms.items():
        p = res["Properties"]
        nics = p.get("NetworkInterfaces", [])
        if len(nics) != 1 or str(nics[0].get("DeviceIndex")) != "0" or "NetworkInterfaceId" in nics[0] \
                or "SubnetId" not in nics[0]:
            problems.append(f"{n}: want one NetworkInterfaces entry, DeviceIndex 0, a SubnetId and no NetworkInterfaceId")
        elif nics[0].get("DeleteOnTermination") is False:
            problems.append(f"{n}: its interface outlives it")
        if p.get("SourceDestCheck") is not False:
            problems.append(f"{n}: SourceDestCheck is not false")
    return problems


def check_vip_route(r, vip):
    """No route to the VIP owned by CloudFormation, unless retained."""
    problems = []
    for n, res in r.of_type("AWS::EC2::Route").items():
        if str(res["Properties"].get("DestinationCidrBlock", "")).startswith(vip + "/"):
            if res.get("DeletionPolicy") != "Retain" or res.get("UpdateReplacePolicy") != "Retain":
                problems.append(f"{n}: CloudFormation owns the VIP route (leave it to the first claim, or Retain it)")
    return problems


def check_imdsv2(r):
    problems = []
    for n, res in r.of_type("AWS::EC2::Instance").items():
        md = res["Properties"].get("MetadataOptions", {})
        if md.get("HttpTokens") != "required":
            problems.append(f"{n}: IMDSv2 not required")
    for n, res in members(r).items():
        if int(res["Properties"].get("MetadataOptions", {}).get("HttpPutResponseHopLimit", 1)) < 2:
            problems.append(f"{n}: hop limit below 2 (IRIS in a container can't reach IMDS)")
    return problems


def check_azs(r):
    """Members in the first two AZs every account sees; the arbiter by default in one of them."""
    problems = []
    member_azs = [r.resources[_instance_subnet(i)]["Properties"]["AvailabilityZone"] for i in members(r).values()]
    if sorted(member_azs) != ["<az0>", "<az1>"]:
        problems.append(f"members in {member_azs}, want <az0> and <az1>")
    for n, s in r.of_type("AWS::EC2::Subnet").items():
        if s["Properties"]["AvailabilityZone"] not in ("<az0>", "<az1>"):
            problems.append(f"{n}: in {s['Properties']['AvailabilityZone']}, which two-AZ regions lack")
    return problems


def check_ssm(r):
    """Every instance reachable through Session Manager without a public address."""
    problems = []
    core = f"arn:{PARTITION}:iam::aws:policy/AmazonSSMManagedInstanceCore"
    for n, res in r.of_type("AWS::EC2::Instance").items():
        role = role_of(r, res)
        if role is None:
            problems.append(f"{n}: no instance profile")
        elif core not in r.resources[role]["Properties"].get("ManagedPolicyArns", []):
            problems.append(f"{n}: role {role} lacks AmazonSSMManagedInstanceCore")
        for nic in res["Properties"].get("NetworkInterfaces", []):
            if nic.get("AssociatePublicIpAddress") is not False:
                problems.append(f"{n}: AssociatePublicIpAddress is not false")
    for n, s in r.of_type("AWS::EC2::Subnet").items():
        if s["Properties"].get("MapPublicIpOnLaunch"):
            problems.append(f"{n}: MapPublicIpOnLaunch")
    return problems


def check_user_data(r, script, vip, runs=True):
    """Each member's user data carries persist-vip.sh verbatim and runs it for the VIP (runs=False,
    VipMode=eip: exits before it, since an Elastic IP needs nothing on the host)."""
    problems = []
    for n, res in members(r).items():
        ud = res["Properties"].get("UserData", "")
        stops = ud.startswith(f"#!/bin/bash\nVIP={vip}\nexit 0\n")
        if stops == runs:
            problems.append(f"{n}: user data {'stops before' if stops else 'runs'} persist-vip.sh")
        bodies = HEREDOC.findall(ud)
        if bodies != [script.rstrip("\n")]:
            problems.append(f"{n}: user data does not carry examples/persist-vip/persist-vip.sh verbatim "
                            "(run python3 examples/persist-vip/embed.py)")
        if f"\nVIP={vip}\n" not in ud or '--vip "$VIP"' not in ud:
            problems.append(f"{n}: user data does not run the script for VIP={vip}")
    return problems


def check_alert(r, vip):
    """With AlertEmail: a rule on the members' role's route calls for anything but the VIP, to SNS."""
    rules = r.of_type("AWS::Events::Rule")
    if len(rules) != 1:
        return [f"{len(rules)} EventBridge rules, want 1"]
    (name, rule), = rules.items()
    problems = []
    p = rule["Properties"]["EventPattern"]
    d = p.get("detail", {})
    if p.get("detail-type") != ["AWS API Call via CloudTrail"] or p.get("source") != ["aws.ec2"]:
        problems.append(f"{name}: not matching EC2 API calls from CloudTrail")
    if sorted(d.get("eventName", [])) != ["CreateRoute", "DeleteRoute", "ReplaceRoute"]:
        problems.append(f"{name}: eventName {d.get('eventName')}")
    issuer = d.get("userIdentity", {}).get("sessionContext", {}).get("sessionIssuer", {}).get("arn")
    roles = {role_of(r, m) for m in members(r).values()}
    if issuer != [f"{{getatt:{x}.Arn}}" for x in sorted(roles)]:
        problems.append(f"{name}: sessionIssuer.arn {issuer}, want the members' role")
    if {"requestParameters": {"destinationCidrBlock": [{"anything-but": f"{vip}/32"}]}} not in d.get("$or", []):
        problems.append(f"{name}: no anything-but {vip}/32 on requestParameters.destinationCidrBlock")
    targets = [ref_name(t["Arn"]) for t in rule["Properties"].get("Targets", [])]
    topics = r.of_type("AWS::SNS::Topic")
    if not targets or not set(targets) <= set(topics):
        problems.append(f"{name}: targets {targets} are not SNS topics of the stack")
    policies = [x["Properties"] for x in r.of_type("AWS::SNS::TopicPolicy").values()]
    if not any(s["Principal"] == {"Service": "events.amazonaws.com"} and s["Action"] == "sns:Publish"
               for pol in policies for s in pol["PolicyDocument"]["Statement"]):
        problems.append("no topic policy lets EventBridge publish")
    return problems


def event_matches(pattern, event):
    """EventBridge's matching for the operators the alert uses (exact values, anything-but,
    exists, $or, nesting), after the documented semantics: a leaf matches when any listed
    value matches; a missing field matches only exists:false."""
    for key, want in pattern.items():
        if key == "$or":
            if not any(event_matches(alt, event) for alt in want):
                return False
            continue
        have = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(want, dict):
            if not event_matches(want, have if isinstance(have, dict) else {}):
                return False
        elif not any(_leaf(w, have) for w in want):
            return False
    return True


_MISSING = object()


def _leaf(want, have):
    if isinstance(want, dict):
        if "exists" in want:
            return (have is not _MISSING) == want["exists"]
        if "anything-but" in want:
            bad = listify(want["anything-but"])
            return have is not _MISSING and not isinstance(have, (dict, list)) and have not in bad
        raise ValueError(f"operator {want} not supported here")
    if have is _MISSING:
        return False
    return want in have if isinstance(have, list) else want == have


# --- VipMode (route, private-ip, eip) ------------------------------------------------------------

def _policies_reference():
    """The IAM service authorization reference for EC2 as cfn-lint ships it: per action the resource
    types it authorizes, per resource type its ARN format and condition keys."""
    import cfnlint

    path = Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json"
    return json.loads(path.read_text())["ec2"]


_REFERENCE = None


def reference():
    global _REFERENCE
    if _REFERENCE is None:
        _REFERENCE = _policies_reference()
    return _REFERENCE


_GLOBAL_KEYS = re.compile(r"^aws:")


def check_reference(statements):
    """Every Allow statement of EC2 actions agrees with the service authorization reference: an
    action without resource types gets Resource "*"; an action with resource types gets only ARNs
    of types it authorizes; every ec2: condition key belongs to each resource type the statement
    names (a key a resource type does not have makes StringEquals false, so the call is denied)."""
    ref = reference()
    actions_ref = {k.lower(): v for k, v in ref["Actions"].items()}
    types = {k.lower(): v for k, v in ref["Resources"].items()}
    problems = []
    for s in statements:
        if s.get("Effect") != "Allow":
            continue
        sid = s.get("Sid", "?")
        actions = [a for a in listify(s["Action"]) if a.startswith("ec2:")]
        resources = [str(x) for x in listify(s.get("Resource", []))]
        named = set()
        for arn in resources:
            if arn == "*":
                continue
            m = re.match(r"^arn:[^:]*:ec2:[^:]*:[^:]*:([a-z-]+)/", arn)
            if m is None:
                problems.append(f"{sid}: {arn!r} is not an EC2 resource ARN")
                continue
            named.add(m.group(1))
        for action in actions:
            spec = actions_ref.get(action.split(":", 1)[1].lower())
            if spec is None:
                problems.append(f"{sid}: {action} is not an EC2 action")
                continue
            allowed = {x.lower() for x in spec.get("Resources", [])}
            if not allowed and resources != ["*"]:
                problems.append(f"{sid}: {action} takes no resource type: Resource must be \"*\"")
            if allowed and "*" in resources:
                problems.append(f"{sid}: {action} authorizes {sorted(allowed)}: Resource \"*\" is not least privilege")
            for kind in named - allowed:
                problems.append(f"{sid}: {action} does not authorize {kind} resources")
        for operator, pairs in s.get("Condition", {}).items():
            for key in pairs:
                if _GLOBAL_KEYS.match(key) or not key.startswith("ec2:"):
                    continue
                for kind in named:
                    keys = {k.lower() for k in types.get(kind, {}).get("ConditionKeys", [])}
                    if key.lower() not in keys and not any(k.endswith("${tagkey}") and key.lower().startswith(k[:-len("${tagkey}")]) for k in keys):
                        problems.append(f"{sid}: {kind} has no condition key {key} ({operator} would deny)")
    return problems


def member_statements(r):
    out = []
    for res in members(r).values():
        out += statements_of(r, role_of(r, res))
    return out


def check_mode_permissions(r, mode, release_enabled):
    """The members may change exactly what their mode moves (the release action only with
    AllowRelease), read what it reads, and nothing of the other modes; every address statement
    is scoped to this stack's VPC (private-ip: and to the members' subnet; eip: the stack's own
    Elastic IP by its allocation id)."""
    problems = []
    ms = members(r)
    if not ms:
        return ["no instance may move the VIP"]
    changes, reads = MODE_ACTIONS[mode]
    want = changes if release_enabled else changes - RELEASE_ACTIONS
    vpc_arn = f"{SCOPE}:vpc/{{ref:Vpc}}"
    for m, res in ms.items():
        ss = [s for s in statements_of(r, role_of(r, res)) if s["Effect"] == "Allow"]
        granted = set()
        for s in ss:
            granted |= set(listify(s["Action"]))
        if granted & VIP_ACTIONS != want:
            problems.append(f"{m}: may change {sorted(granted & VIP_ACTIONS)}, want {sorted(want)} for VipMode={mode}")
        describes = {a for a in granted if a.startswith("ec2:Describe")}
        if describes != reads:
            problems.append(f"{m}: reads {sorted(describes)}, want {sorted(reads)}")
        if mode == "route":
            continue
        for s in ss:
            actions = set(listify(s["Action"])) & VIP_ACTIONS
            if not actions:
                continue
            cond = s.get("Condition", {}).get("StringEquals", {})
            for arn in listify(s["Resource"]):
                arn = str(arn)
                if arn.startswith(f"{SCOPE}:network-interface/"):
                    if cond.get("ec2:Vpc") != vpc_arn:
                        problems.append(f"{m}: {s.get('Sid')} on {arn} without StringEquals ec2:Vpc = {vpc_arn}")
                    if mode == "private-ip":
                        subnets = {_instance_subnet(i) for i in ms.values()}
                        wanted = {f"{SCOPE}:subnet/{{ref:{x}}}" for x in subnets}
                        if len(wanted) != 1 or cond.get("ec2:Subnet") not in wanted:
                            problems.append(f"{m}: {s.get('Sid')} on {arn} without StringEquals ec2:Subnet = the members' subnet")
                elif mode == "eip" and arn == f"{SCOPE}:elastic-ip/{{getatt:VipEip.AllocationId}}":
                    pass
                else:
                    problems.append(f"{m}: {s.get('Sid')}: {sorted(actions)} on {arn!r}")
    problems += check_reference(member_statements(r))
    return problems


def check_private_ip(r, vip):
    """Both members in one subnet; an explicit CIDR reservation there holds the VIP; the config and
    the user data use it."""
    problems = []
    ms = members(r)
    subnets = {_instance_subnet(i) for i in ms.values()}
    if len(subnets) != 1:
        return [f"members in subnets {sorted(s or '' for s in subnets)}: private-ip needs one subnet"]
    (subnet,) = subnets
    cidr = ipaddress.ip_network(r.resources[subnet]["Properties"]["CidrBlock"])
    reservations = [x["Properties"] for x in r.of_type("AWS::EC2::SubnetCidrReservation").values()
                    if ref_name(x["Properties"]["SubnetId"]) == subnet and x["Properties"]["ReservationType"] == "explicit"]
    if not any(ipaddress.ip_address(vip) in ipaddress.ip_network(x["Cidr"]) for x in reservations):
        problems.append(f"{vip} is in no explicit CIDR reservation of {subnet}")
    for x in reservations:
        if not ipaddress.ip_network(x["Cidr"]).subnet_of(cidr):
            problems.append(f"reservation {x['Cidr']} outside {subnet} ({cidr})")
    first, last = list(cidr.hosts())[2], cidr.broadcast_address
    if not first < ipaddress.ip_address(vip) < last:
        problems.append(f"{vip} is one of the addresses AWS reserves in {cidr}")
    if r.outputs.get("IrisVipConfig") != f"mode=private-ip;vip={vip}":
        problems.append(f"IrisVipConfig is {r.outputs.get('IrisVipConfig')!r}")
    return problems


def check_eip(r):
    """An Elastic IP allocated by the stack and associated by nobody but the library; its
    allocation id in the outputs and the config; the members' tables route to an internet gateway;
    no NAT gateway (replies would leave by it)."""
    problems = []
    eips = {n: x for n, x in r.of_type("AWS::EC2::EIP").items()
            if not any(ref_name(g["Properties"].get("AllocationId", "")) == n or
                       g["Properties"].get("AllocationId") == f"{{getatt:{n}.AllocationId}}"
                       for g in r.of_type("AWS::EC2::NatGateway").values())}
    if list(eips) != ["VipEip"]:
        return [f"Elastic IPs for the VIP: {sorted(eips)}, want VipEip"]
    p = eips["VipEip"]["Properties"]
    if p.get("Domain") != "vpc":
        problems.append("VipEip: Domain is not vpc")
    for key in ("InstanceId", "NetworkInterfaceId"):
        if key in p:
            problems.append(f"VipEip: CloudFormation associates it ({key}); the library must")
    if r.of_type("AWS::EC2::EIPAssociation"):
        problems.append("an AWS::EC2::EIPAssociation: CloudFormation would own the association")
    alloc = "{getatt:VipEip.AllocationId}"
    if r.outputs.get("VipAllocationId") != alloc:
        problems.append(f"VipAllocationId output is {r.outputs.get('VipAllocationId')!r}")
    if r.outputs.get("IrisVipConfig") != f"mode=eip;allocation_id={alloc}":
        problems.append(f"IrisVipConfig is {r.outputs.get('IrisVipConfig')!r}")
    gateways = set(r.of_type("AWS::EC2::InternetGateway"))
    for table in sorted({_table_of(r, _instance_subnet(i)) for i in members(r).values()}):
        routes = [x["Properties"] for x in r.of_type("AWS::EC2::Route").values()
                  if ref_name(x["Properties"]["RouteTableId"]) == table and x["Properties"].get("DestinationCidrBlock") == "0.0.0.0/0"]
        if len(routes) != 1 or ref_name(routes[0].get("GatewayId")) not in gateways:
            problems.append(f"{table}: the members' default route does not go to an internet gateway")
    if r.of_type("AWS::EC2::NatGateway"):
        problems.append("NAT gateways with an Elastic IP VIP: replies would leave by them")
    return problems


def _table_of(r, subnet):
    for a in r.of_type("AWS::EC2::SubnetRouteTableAssociation").values():
        if ref_name(a["Properties"]["SubnetId"]) == subnet:
            return ref_name(a["Properties"]["RouteTableId"])
    return None
