#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for EC2 (moto) and IMDS stand-ins. Standard library only.

Sits between irisvip and its upstream: point the library at it with `endpoint=http://127.0.0.1:PORT`
in the config (EC2) or `AWS_EC2_METADATA_SERVICE_ENDPOINT` (IMDS). Every request is matched
against a list of rules, in order; the first rule that matches and still has a count left
decides what happens to it. A request no rule takes is forwarded unchanged.

    faultproxy.py --upstream http://127.0.0.1:5000 [--port 0] [--script rules.json] [--model JSON|@file]

Prints "PORT <n>" on stdout once listening. With --tls-cert and --tls-key it also serves the
same rules over HTTPS on a second port and prints "TLSPORT <n>" on the next line (the control
API stays on the plain port); the upstream is still plain HTTP. Loopback only: it never forwards elsewhere than
--upstream, and --upstream must be a loopback URL.

Control API (paths under /_ are never forwarded):
    POST   /_faults         body: JSON list of rules; replaces the current list
    POST   /_faults/append  body: JSON list of rules; appended to the current list
    GET    /_faults         the rules with their remaining counts
    DELETE /_faults         no rules: forward everything
    GET    /_log            JSON list, one entry per request seen (control requests excluded)
    DELETE /_log            empty the log
    POST   /_model          body: model config (JSON object); turns the EC2 model on with fresh
                            state, replacing any model before it; answers as GET
    GET    /_model          {"enabled": true, "config", counters, bucket levels} or
                            {"enabled": false, "config": null}
    DELETE /_model          the model off: plain forwarding again
A control request that is not valid answers 400 {"error": "..."} and changes nothing.

A rule (JSON object):
    match, all optional, all must hold:
      "action": "ReplaceRoute"        EC2 Action= (form body or query string)
      "method": "GET"                 HTTP method
      "path": "/latest/api/token"     exact path (query string excluded)
      "path_prefix": "/latest/meta-data/"
      "params": {"RouteTableId": "rtb-1"}   form/query parameters that must be equal
    "count": n        how many requests the rule takes (default 1; -1 = every one)
    "after": k        let the first k matching requests pass untouched first (default 0)
    "fault": one of
      "delay"         wait "ms" then forward ("where": "after" forwards first and delays the
                      answer: the change lands, the answer is late)
      "status"        answer HTTP "status" (default 500) with "body" (default empty)
      "throttle"      EC2 throttling: "code" RequestLimitExceeded (HTTP 503, default) or
                      Throttling (HTTP 400); "status" overrides the HTTP status
      "ec2_error"     EC2 error XML with "code", "message" and "status" (default 400)
      "unauthorized"  HTTP 403 UnauthorizedOperation naming the request's action in the message
      "reset"         read the request, then close with a TCP RST (SO_LINGER 0)
      "close"         read the request, then close cleanly without answering
      "hang"          read the request and never answer (the connection is held until the
                      client closes it or "max_s", default 120, passes)
      "trickle"       forward, then send the answer's headers and its body "chunk" bytes
                      (default 1) every "interval_ms" (default 100)
      "canned"        answer "body" with "status" (default 200) and "content_type" (default
                      text/xml) instead of forwarding
      "expire_token"  IMDSv2: the token on the next matching GET expires now: that GET and every
                      later request carrying the same token get 401; a new token works
    "name": free text copied into the log

A log entry: {"seq", "t" (s since start), "method", "path", "action", "params" (EC2 form
parameters, never headers: credentials and tokens travel in headers), "fault" (rule name or
fault, null when forwarded untouched), "status" (HTTP status answered, or "reset", "close",
"hang"), "ms"}; with the model on, "fault" is "model:throttle" for a request it throttled, "model:refuse" / "model:dry_run" for
one it answered as EC2 would without forwarding it, and
"stale": [ids] lists the resources a describe answered with an older version.

The EC2 model (off by default; docs/ec2-model.md has every parameter, its default and source).
It stands for what moto lacks and real EC2 does (/work/shared/docs/real-world-ec2.md), and sees
only EC2 requests (an Action parameter, not signed for another service) that no rule took:
  - token buckets per account (one proxy = one account) and region, one per API action, sized by
    the action's category (non_mutating 100 + 20/s, unfiltered_describe 50 + 10/s, mutating
    50 + 5/s, private_ip 100 + 5/s); an empty bucket answers RequestLimitExceeded (HTTP 503) and
    the request never reaches the upstream;
  - eventual consistency: after CreateRoute/ReplaceRoute/DeleteRoute on a route table, answers
    to DescribeRouteTables that include it show its previous state for a window drawn from
    [min_ms, max_ms] (or a fixed stale_ms); the last write wins;
  - private IPs and Elastic IPs as EC2 answers them ("addresses", on by default): a reassigned
    private IP moves (moto keeps it on the old ENI too), the addresses.private-ip-address filter
    matches secondary addresses, EC2's errors for what moto lets pass (move not allowed, outside
    the subnet, unassigning an address not held, a PrivateIpAddress not on the ENI), an EIP
    association records its private IP, DryRun answered (412) or refused (UnknownParameter, for
    the two actions without DryRun) without reaching moto; "address_consistency" makes ENIs'
    private IPs and EIP associations read stale after a write, as "consistency" does for routes;
  - service latency: each request waits latency_ms in its own thread before it is forwarded (and
    answer_latency_ms before its answer), so parallel requests wait in parallel.
A config (every key optional; GET /_model's "config" is this shape with the defaults filled in):
    {"seed": 7,
     "throttle": true | false | {"enabled": true,
                  "categories": {"mutating": {"size": 50, "refill": 5}, ...},
                  "actions": {"ReplaceRoute": "mutating", "DescribeVpcs": {"size": 5, "refill": 1}},
                  "throttled_consumes": false, "refill_mode": "second" | "continuous"},
     "consistency": true | false | {"stale_ms": 800} | {"min_ms": 0, "max_ms": 1000},
     "addresses": true | false,
     "address_consistency": (as consistency; default: consistency's, off when it or addresses is),
     "latency_ms": 0 | 200 | [50, 150], "answer_latency_ms": 0 | [min, max]}

The EC2 error body is what EC2 sends:
<Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors><RequestID>..</RequestID></Response>
"""

import argparse
import copy
import fnmatch
import http.client
import ipaddress
import json
import math
import random
import re
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

TOKEN_HEADER = "X-aws-ec2-metadata-token"
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
FAULTS = {
    "delay",
    "status",
    "throttle",
    "ec2_error",
    "unauthorized",
    "reset",
    "close",
    "hang",
    "trickle",
    "canned",
    "expire_token",
}
MATCH_KEYS = {"action", "method", "path", "path_prefix", "params"}


class State:
    def __init__(self, upstream):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.rules = []
        self.log = []
        self.seq = 0
        self.started = time.monotonic()
        self.expired_tokens = set()
        self.model = None  # a Model while the EC2 model is on

    def set_model(self, cfg):
        """cfg: a checked model config (a new model, fresh state) or None (off)."""
        model = Model(cfg, self.upstream) if cfg is not None else None
        with self.lock:
            self.model = model
        return model

    def set_rules(self, rules, append=False):
        checked = [check_rule(r) for r in rules]
        with self.lock:
            if append:
                self.rules.extend(checked)
            else:
                self.rules = checked

    def take(self, req):
        """The first matching rule with a count left, or None. Consumes one count."""
        with self.lock:
            for rule in self.rules:
                if rule["count"] == 0 or not matches(rule, req):
                    continue
                if rule["after"] > 0:
                    rule["after"] -= 1
                    return None
                if rule["count"] > 0:
                    rule["count"] -= 1
                return dict(rule)
        return None

    def record(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            entry["t"] = round(time.monotonic() - self.started, 4)
            self.log.append(entry)


def check_rule(rule):
    if not isinstance(rule, dict):
        raise ValueError(f"a rule is a JSON object, not {rule!r}")
    fault = rule.get("fault")
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {sorted(FAULTS)}")
    unknown = set(rule) - MATCH_KEYS - {
        "fault", "count", "after", "name", "ms", "where", "status", "body", "code", "message",
        "chunk", "interval_ms", "max_s", "content_type",
    }
    if unknown:
        raise ValueError(f"unknown rule keys {sorted(unknown)}")
    out = dict(rule)
    out["count"] = int(rule.get("count", 1))
    out["after"] = int(rule.get("after", 0))
    return out


def matches(rule, req):
    if "action" in rule and req["action"] != rule["action"]:
        return False
    if "method" in rule and req["method"] != rule["method"].upper():
        return False
    if "path" in rule and req["path"] != rule["path"]:
        return False
    if "path_prefix" in rule and not req["path"].startswith(rule["path_prefix"]):
        return False
    for k, v in (rule.get("params") or {}).items():
        if req["params"].get(k) != v:
            return False
    return True


def ec2_error_xml(code, message):
    rid = str(uuid.uuid4())
    return (
        f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error></Errors><RequestID>{rid}</RequestID></Response>"
    ).encode()


# -- the EC2 model (off unless --model or POST /_model) ---------------------------------------
# Numbers: /work/shared/docs/real-world-ec2.md (AWS's EC2 throttling documentation); docs/ec2-model.md.

DEFAULT_CATEGORIES = {
    "non_mutating": {"size": 100, "refill": 20},
    "unfiltered_describe": {"size": 50, "refill": 10},
    "mutating": {"size": 50, "refill": 5},
    "private_ip": {"size": 100, "refill": 5},
}
DEFAULT_ACTIONS = {
    "DescribeInstances": "unfiltered_describe",
    "DescribeNetworkInterfaces": "unfiltered_describe",
    "AssignPrivateIpAddresses": "private_ip",
    "UnassignPrivateIpAddresses": "private_ip",
}
NON_MUTATING_PREFIXES = ("Describe", "Get", "List", "Search")
DEFAULT_WINDOW_MS = (0.0, 1000.0)  # AWS gives no bound: an assumption, see docs/ec2-model.md
SNAPSHOT_DATE = "20260101"  # moto reads only the credential scope; it checks no signature
CREDENTIAL_RE = re.compile(r"Credential=([^/\s,]+)/[0-9]{8}/([^/\s,]+)/([^/\s,]+)/")


class Kind:
    """A kind of EC2 resource whose describes the model can answer stale.

    Route tables are written one per request (`mutations`: action -> the parameter naming the
    table). Network interfaces and Elastic IP addresses are written by the address semantics
    (AddressModel), which knows which resources a write changes (a move changes two ENIs), so
    their `mutations` are empty here."""

    def __init__(self, name, describe, set_tag, id_tag, id_param, mutations):
        self.name = name
        self.describe = describe  # the describe action whose answers are rewritten
        self.set_tag = set_tag  # the answer's list element, one <item> per resource
        self.id_tag = id_tag  # the item's id element
        self.id_param = id_param  # the describe's parameter that selects one resource
        self.mutations = mutations  # mutating action -> request parameter naming the resource


ROUTE_TABLE = Kind("route_table", "DescribeRouteTables", "routeTableSet", "routeTableId", "RouteTableId.1",
                   {"CreateRoute": "RouteTableId", "ReplaceRoute": "RouteTableId", "DeleteRoute": "RouteTableId"})
NETWORK_INTERFACE = Kind("network_interface", "DescribeNetworkInterfaces", "networkInterfaceSet",
                         "networkInterfaceId", "NetworkInterfaceId.1", {})
ADDRESS = Kind("address", "DescribeAddresses", "addressesSet", "allocationId", "AllocationId.1", {})
KINDS = [ROUTE_TABLE, NETWORK_INTERFACE, ADDRESS]
KIND_BY_DESCRIBE = {k.describe: k for k in KINDS if k.mutations}  # route tables; the others below
KIND_BY_MUTATION = {a: (k, p) for k in KINDS for a, p in k.mutations.items()}
# The address semantics (docs/ec2-model.md, "Private IPs and Elastic IPs"): the mutations it
# answers itself or forwards, and the describes whose answers it corrects.
ADDRESS_MUTATIONS = ("AssignPrivateIpAddresses", "UnassignPrivateIpAddresses", "AssociateAddress", "DisassociateAddress")
ADDRESS_DESCRIBES = {"DescribeNetworkInterfaces": NETWORK_INTERFACE, "DescribeAddresses": ADDRESS}
NO_DRY_RUN = ("AssignPrivateIpAddresses", "UnassignPrivateIpAddresses")  # actions without a DryRun parameter
ENI_ADDRESS_FILTERS = ("addresses.private-ip-address", "private-ip-address")
UNAUTHORIZED_RESOURCE = {  # the resource an UnauthorizedOperation names, by action (default: route tables)
    "AssignPrivateIpAddresses": "network-interface/*",
    "UnassignPrivateIpAddresses": "network-interface/*",
    "AssociateAddress": "elastic-ip/*",
    "DisassociateAddress": "elastic-ip/*",
}


def _number(v, what, minimum=0.0):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < minimum:
        raise ValueError(f"{what} must be a number >= {minimum:g}, not {v!r}")
    return v


def _keys(obj, allowed, what):
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be a JSON object, not {obj!r}")
    unknown = set(obj) - set(allowed)
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)} in {what}; known: {sorted(allowed)}")


def _bucket_spec(v, what):
    _keys(v, ("size", "refill"), what)
    if "size" not in v or "refill" not in v:
        raise ValueError(f"{what} needs both \"size\" and \"refill\"")
    size = _number(v["size"], f"{what}.size", 1)
    return {"size": size, "refill": _number(v["refill"], f"{what}.refill")}


def _range_ms(v, what):
    """A latency: a number of ms, or [min, max] drawn uniformly."""
    if isinstance(v, list):
        if len(v) != 2:
            raise ValueError(f"{what} is a number of ms or [min_ms, max_ms], not {v!r}")
        lo, hi = (_number(x, what) for x in v)
    else:
        lo = hi = _number(v, what)
    if lo > hi:
        raise ValueError(f"{what}: min {lo} is above max {hi}")
    return [lo, hi]


def check_model(cfg):
    """Validates a model configuration; returns it normalized (every default filled in, in the
    shape POST /_model accepts, so GET's "config" can be posted back)."""
    _keys(cfg, ("seed", "throttle", "consistency", "addresses", "address_consistency", "latency_ms",
                "answer_latency_ms"), "the model")
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an integer or null, not {seed!r}")
    th = cfg.get("throttle", True)
    if isinstance(th, bool):
        th = {"enabled": th}
    _keys(th, ("enabled", "categories", "actions", "throttled_consumes", "refill_mode"), "throttle")
    cats = {k: dict(v) for k, v in DEFAULT_CATEGORIES.items()}
    given = th.get("categories", {})
    _keys(given, list(given), "throttle.categories")
    for name, spec in given.items():
        base = dict(cats.get(name, {}))
        _keys(spec, ("size", "refill"), f"throttle.categories.{name}")
        base.update(spec)
        cats[name] = _bucket_spec(base, f"throttle.categories.{name}")
    actions = dict(DEFAULT_ACTIONS)
    given = th.get("actions", {})
    _keys(given, list(given), "throttle.actions")
    for action, v in given.items():
        if isinstance(v, str):
            if v not in cats:
                raise ValueError(f"throttle.actions.{action}: unknown category {v!r}; known: {sorted(cats)}")
            actions[action] = v
        else:
            actions[action] = _bucket_spec(v, f"throttle.actions.{action}")
    mode = th.get("refill_mode", "second")
    if mode not in ("second", "continuous"):
        raise ValueError(f"throttle.refill_mode is \"second\" or \"continuous\", not {mode!r}")
    consumes = th.get("throttled_consumes", False)
    enabled = th.get("enabled", True)
    for k, v in (("throttle.throttled_consumes", consumes), ("throttle.enabled", enabled)):
        if not isinstance(v, bool):
            raise ValueError(f"{k} must be true or false, not {v!r}")
    co = _consistency(cfg.get("consistency", True), "consistency")
    ad = cfg.get("addresses", True)
    if isinstance(ad, bool):
        ad = {"enabled": ad}
    _keys(ad, ("enabled",), "addresses")
    ad_enabled = ad.get("enabled", True)
    if not isinstance(ad_enabled, bool):
        raise ValueError(f"addresses.enabled must be true or false, not {ad_enabled!r}")
    if "address_consistency" in cfg:
        ac = _consistency(cfg["address_consistency"], "address_consistency")
        if ac["enabled"] and not ad_enabled:
            raise ValueError("address_consistency needs the address semantics: \"addresses\" is false")
    else:  # the same window as the route tables', on when they are (and the semantics are)
        ac = dict(co, enabled=co["enabled"] and ad_enabled)
    return {
        "seed": seed,
        "throttle": {"enabled": enabled, "categories": cats, "actions": actions,
                     "throttled_consumes": consumes, "refill_mode": mode},
        "consistency": co,
        "addresses": {"enabled": ad_enabled},
        "address_consistency": ac,
        "latency_ms": _range_ms(cfg.get("latency_ms", 0), "latency_ms"),
        "answer_latency_ms": _range_ms(cfg.get("answer_latency_ms", 0), "answer_latency_ms"),
    }


def _consistency(co, what):
    """A consistency window: true | false | {"stale_ms"} | {"min_ms", "max_ms"} (+ "enabled")."""
    if isinstance(co, bool):
        co = {"enabled": co}
    _keys(co, ("enabled", "stale_ms", "min_ms", "max_ms"), what)
    if "stale_ms" in co and ("min_ms" in co or "max_ms" in co):
        raise ValueError(f"{what}: give either stale_ms (a fixed window) or min_ms/max_ms, not both")
    if "stale_ms" in co:
        lo = hi = _number(co["stale_ms"], f"{what}.stale_ms")
    else:
        lo = _number(co.get("min_ms", DEFAULT_WINDOW_MS[0]), f"{what}.min_ms")
        hi = _number(co.get("max_ms", max(lo, DEFAULT_WINDOW_MS[1])), f"{what}.max_ms")
        if lo > hi:
            raise ValueError(f"{what}: min_ms {lo} is above max_ms {hi}")
    co_enabled = co.get("enabled", True)
    if not isinstance(co_enabled, bool):
        raise ValueError(f"{what}.enabled must be true or false, not {co_enabled!r}")
    return {"enabled": co_enabled, "min_ms": lo, "max_ms": hi}


def load_model_arg(text):
    """--model JSON or --model @file."""
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as f:
            text = f.read()
    return check_model(json.loads(text))


class Bucket:
    def __init__(self, category, size, refill, now):
        self.category = category
        self.size = size
        self.refill = refill
        self.level = float(size)  # a bucket starts full
        self.anchor = now  # "second" mode: tokens arrive at anchor + 1 s, + 2 s, ...
        self.last = now

    def advance(self, now, mode):
        if mode == "second":
            gained = (math.floor(now - self.anchor) - math.floor(self.last - self.anchor)) * self.refill
        else:
            gained = (now - self.last) * self.refill
        self.last = now
        if gained > 0:
            self.level = min(float(self.size), self.level + gained)


class Version:
    def __init__(self, visible_from, item):
        self.visible_from = visible_from  # monotonic seconds; 0 = always visible
        self.item = item  # the resource's <item> element, as moto described it


class Resource:
    """What the model knows of one resource: versions oldest first, writes under way."""

    def __init__(self):
        self.versions = []
        self.writing = 0
        self.lock = threading.Lock()  # serializes snapshot / write / snapshot per resource

    def pending(self, now):
        return self.writing > 0 or (bool(self.versions) and self.versions[-1].visible_from > now)

    def visible(self, now):
        """The newest version visible at `now` (None when none is known)."""
        for v in reversed(self.versions):
            if v.visible_from <= now:
                return v
        return None


def _ns_tag(root, tag):
    return root.tag[: root.tag.index("}") + 1] + tag if root.tag.startswith("{") else tag


def serialize(root, data):
    """A rewritten answer as bytes: moto's XML declaration (if any), then the tree in EC2's
    namespace as the default one (as EC2 writes it)."""
    decl = b""
    if data.lstrip().startswith(b"<?xml"):
        head = data.lstrip()
        decl = head[: head.index(b"?>") + 2] + b"\n"
    ns = root.tag[1: root.tag.index("}")] if root.tag.startswith("{") else None
    try:
        text = ET.tostring(root, encoding="unicode", default_namespace=ns)
    except ValueError:  # an element outside the namespace: serialize with prefixes
        text = ET.tostring(root, encoding="unicode")
    return decl + text.encode("utf-8")


def _ns(root):
    return root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""


def _indexed(params, prefix):
    """The values of prefix.1, prefix.2, ... in index order."""
    found = []
    for k, v in params.items():
        head, _, n = k.rpartition(".")
        if head == prefix and n.isdigit():
            found.append((int(n), v))
    return [v for _, v in sorted(found)]


def _numbered(prefix, values):
    return {f"{prefix}.{i}": v for i, v in enumerate(values, 1)}


def _split_filters(params, names):
    """(params without the filters named `names`, renumbered; [[values] per such filter] or None)."""
    filters = {}
    for k, v in params.items():
        parts = k.split(".")
        if parts[0] == "Filter" and len(parts) >= 3 and parts[1].isdigit():
            filters.setdefault(int(parts[1]), {})[".".join(parts[2:])] = v
    taken = [n for n, f in filters.items() if f.get("Name") in names]
    if not taken:
        return params, None
    rest = {k: v for k, v in params.items() if not k.startswith("Filter.")}
    values = []
    for i, n in enumerate(sorted(set(filters) - set(taken)), 1):
        for sub, v in filters[n].items():
            rest[f"Filter.{i}.{sub}"] = v
    for n in taken:
        values.append(_indexed({k: v for k, v in filters[n].items()}, "Value"))
    return rest, values


class Eni:
    """A network interface as moto describes it: id, subnet, primary IP, every private IPv4."""

    def __init__(self, item, ns):
        self.id = item.findtext(ns + "networkInterfaceId")
        self.subnet = item.findtext(ns + "subnetId")
        self.primary = item.findtext(ns + "privateIpAddress")
        self.addresses = {}  # private IPv4 -> primary?
        for it in item.iterfind(f"{ns}privateIpAddressesSet/{ns}item"):
            ip = it.findtext(ns + "privateIpAddress")
            if ip:
                self.addresses[ip] = (it.findtext(ns + "primary") or "").lower() == "true" or ip == self.primary
        if self.primary:
            self.addresses[self.primary] = True


class Model:
    """EC2 as documented, in front of moto: token buckets, eventual consistency, latency.

    One lock (`self.lock`) guards every bucket, version and counter; nothing sleeps or waits on
    the network while holding it. A resource's own lock orders its writes and snapshots."""

    def __init__(self, cfg, upstream):
        self.cfg = cfg
        self.upstream = upstream
        self.lock = threading.Lock()
        self.rng = random.Random(cfg["seed"])
        self.started = time.monotonic()
        self.buckets = {}  # (region, action) -> Bucket
        self.resources = {}  # (region, kind name, id) -> Resource
        self.requests = {}
        self.throttled = {}
        self.stale = {}
        self.clamped = 0
        self.snapshots = 0
        self.snapshot_failures = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.addr_lock = threading.Lock()  # serializes the address mutations (see below)
        self.assoc_private = {}  # EIP association id -> the private IP it was associated with
        self.address_counts = {}  # what the address semantics corrected, by kind
        self.refused = {}  # errors the model answered in EC2's place, by code

    # -- bookkeeping ------------------------------------------------------------------------
    def enter(self, action):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.requests[action] = self.requests.get(action, 0) + 1

    def leave(self):
        with self.lock:
            self.in_flight -= 1

    def draw_ms(self, span):
        lo, hi = span
        if hi <= 0:
            return 0.0
        with self.lock:
            return lo if lo == hi else self.rng.uniform(lo, hi)

    # -- throttling -------------------------------------------------------------------------
    def category(self, action):
        th = self.cfg["throttle"]
        v = th["actions"].get(action)
        if isinstance(v, dict):
            return "action", v
        if v is None:
            v = "non_mutating" if action.startswith(NON_MUTATING_PREFIXES) else "mutating"
        return v, th["categories"][v]

    def admit(self, region, action):
        """Takes a token from the action's bucket; False when EC2 would throttle."""
        th = self.cfg["throttle"]
        if not th["enabled"]:
            return True
        now = time.monotonic()
        with self.lock:
            b = self.buckets.get((region, action))
            if b is None:
                name, spec = self.category(action)
                b = self.buckets[(region, action)] = Bucket(name, spec["size"], spec["refill"], now)
            b.advance(now, th["refill_mode"])
            if b.level >= 1.0:
                b.level -= 1.0
                return True
            if th["throttled_consumes"]:
                # A throttled call still spends a token: the bucket goes into debt (at most one
                # bucketful), so a client that hammers it waits longer than one that backs off.
                b.level = max(-float(b.size), b.level - 1.0)
            self.throttled[action] = self.throttled.get(action, 0) + 1
            return False

    # -- eventual consistency ---------------------------------------------------------------
    def call(self, cred, params):
        """One EC2 request straight to moto (not through the proxy: it spends no token and is not
        logged). Answers (HTTP status, parsed root or None); (None, None) when moto is unreachable."""
        akid, region, token = cred
        body = urllib.parse.urlencode(dict(params, Version="2016-11-15"))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            # moto picks the account from the access key and the region from the scope.
            "Authorization": f"AWS4-HMAC-SHA256 Credential={akid}/{SNAPSHOT_DATE}/{region}/ec2/aws4_request, "
                             "SignedHeaders=host, Signature=0",
        }
        if token:
            headers["X-Amz-Security-Token"] = token
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            conn.request("POST", "/", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            try:
                return resp.status, ET.fromstring(data)
            except ET.ParseError:
                return resp.status, None
        except (OSError, http.client.HTTPException):
            return None, None
        finally:
            conn.close()

    def snapshot(self, cred, kind, rid):
        """The resource's <item> as moto holds it now, asked directly (not through the proxy,
        so it spends no token and is not logged); None if moto does not describe it."""
        status, root = self.call(cred, {"Action": kind.describe, kind.id_param: rid})
        if status != 200 or root is None:
            return None
        set_el = root.find(_ns_tag(root, kind.set_tag))
        for item in set_el if set_el is not None else ():
            if item.findtext(_ns_tag(root, kind.id_tag)) == rid:
                return item
        return None

    def mutate(self, cred, kind, rid, forward, co=None):
        """Carries out a write to one resource (forward() -> (status, reason, headers, data)),
        recording the state before it (if unknown) and after it as versions."""
        return self.mutate_many(cred, [(kind, rid)], forward, co)

    def mutate_many(self, cred, targets, forward, co=None):
        """As mutate, for a write that changes several resources at once (a private IP moved
        from one ENI to another changes both): one window for all of them, so the write becomes
        visible as a whole unless an earlier write to one of them holds it back."""
        co = co or self.cfg["consistency"]
        keyed = sorted({(cred[1], k.name, rid): (k, rid) for k, rid in targets}.items())
        with self.lock:
            held = [(k, rid, self.resources.setdefault(key, Resource())) for key, (k, rid) in keyed]
        for _, _, res in held:  # in key order: two writes never wait on each other crosswise
            res.lock.acquire()
        try:
            now = time.monotonic()
            with self.lock:
                need_base = []
                for _, _, res in held:
                    if not res.pending(now):
                        # Settled: forget the history so the state before this write is read
                        # afresh (moto may have been changed behind the proxy's back).
                        res.versions = []
                    need_base.append(not res.versions)
                    res.writing += 1
            try:
                for (k, rid, res), base in zip(held, need_base):
                    if not base:
                        continue
                    item = self.snapshot(cred, k, rid)
                    with self.lock:
                        self.snapshots += 1
                        if item is None:
                            self.snapshot_failures += 1
                        elif not res.versions:
                            res.versions.append(Version(0.0, item))
                result = forward()
                if 200 <= result[0] < 300:
                    items = [self.snapshot(cred, k, rid) for k, rid, _ in held]
                    with self.lock:
                        window = None
                        for (_, _, res), item in zip(held, items):
                            self.snapshots += 1
                            if item is None:
                                self.snapshot_failures += 1
                                continue
                            if window is None:
                                lo, hi = co["min_ms"], co["max_ms"]
                                window = (lo if lo == hi else self.rng.uniform(lo, hi)) / 1000.0
                            now = time.monotonic()
                            last = res.versions[-1].visible_from if res.versions else 0.0
                            if last > now + window:
                                self.clamped += 1  # the last write wins: never visible before an earlier one
                            res.versions.append(Version(max(now + window, last), item))
                            self.compact(res, now)
                return result
            finally:
                with self.lock:
                    for _, _, res in held:
                        res.writing -= 1
        finally:
            for _, _, res in reversed(held):
                res.lock.release()

    @staticmethod
    def compact(res, now):
        """Keeps the newest visible version and the pending ones (lock held)."""
        newest = None
        for i, v in enumerate(res.versions):
            if v.visible_from <= now:
                newest = i
        if newest:
            del res.versions[:newest]

    def rewrite(self, kind, region, data):
        """Substitutes, in a describe answer, each resource that has a write not yet visible
        with its newest visible version. Returns (data, [ids answered stale])."""
        try:
            root = ET.fromstring(data)
        except ET.ParseError:
            return data, []
        stale = self.substitute(kind, region, root)
        if not stale:
            return data, []
        return serialize(root, data), stale

    def substitute(self, kind, region, root):
        """rewrite's work on a parsed answer, in place; answers the ids answered stale."""
        set_el = root.find(_ns_tag(root, kind.set_tag))
        if set_el is None:
            return []
        id_tag = _ns_tag(root, kind.id_tag)
        now = time.monotonic()
        subs = {}
        with self.lock:
            for item in set_el:
                rid = item.findtext(id_tag)
                res = self.resources.get((region, kind.name, rid))
                if res is None or not res.pending(now):
                    continue
                v = res.visible(now)
                if v is not None:
                    subs[rid] = v.item
                    self.stale[rid] = self.stale.get(rid, 0) + 1
        if not subs:
            return []
        for i, item in enumerate(list(set_el)):
            rid = item.findtext(id_tag)
            if rid in subs:
                set_el[i] = copy.deepcopy(subs[rid])
        return sorted(subs)

    # -- private IPs and Elastic IPs (docs/ec2-model.md) --------------------------------------
    # moto is kinder than EC2 here: AssignPrivateIpAddresses leaves a reassigned address on its old
    # ENI too, the addresses.private-ip-address filter sees primary addresses only, unassigning
    # an address the ENI lacks succeeds, AssociateAddress ignores PrivateIpAddress, and DryRun
    # of AssignPrivateIpAddresses really assigns. The model checks what EC2 checks (reading moto
    # directly), answers EC2's errors itself, and brings moto's state to what EC2's would be.
    # Address mutations are serialized proxy-wide (moto is serial anyway), so a move's "who
    # holds it now" and its write cannot interleave with another move.

    def count(self, what, n=1):
        with self.lock:
            self.address_counts[what] = self.address_counts.get(what, 0) + n

    def refuse(self, code, message, status=400):
        with self.lock:
            self.refused[code] = self.refused.get(code, 0) + 1
        return (status, "", [("Content-Type", "text/xml;charset=UTF-8")], ec2_error_xml(code, message)), "model:refuse"

    def address_mutation(self, cred, action, params, forward):
        """One of ADDRESS_MUTATIONS; answers ((status, reason, headers, data), log note or None)."""
        if "DryRun" in params and action in NO_DRY_RUN:
            # The API has no DryRun here (EC2 API reference; botocore's and aws-sdk-ec2's models):
            # EC2 refuses a parameter it does not know; moto would ignore it and really assign.
            return self.refuse("UnknownParameter", "The parameter DryRun is not recognized")
        if params.get("DryRun", "").lower() == "true":
            # EC2 checks permissions only and changes nothing.
            # Denials: fault rules ("unauthorized") take the request before the model sees it.
            self.count("dry_run")
            return ((412, "", [("Content-Type", "text/xml;charset=UTF-8")],
                     ec2_error_xml("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")),
                    "model:dry_run")
        handler = {"AssignPrivateIpAddresses": self.assign, "UnassignPrivateIpAddresses": self.unassign,
                   "AssociateAddress": self.associate, "DisassociateAddress": self.disassociate}[action]
        with self.addr_lock:
            return handler(cred, params, forward)

    def versioned(self, cred, kind, ids, write):
        """write() under the address consistency model (versions of every resource it changes)."""
        co = self.cfg["address_consistency"]
        ids = [i for i in ids if i]
        if co["enabled"] and ids:
            return self.mutate_many(cred, [(kind, i) for i in ids], write, co)
        return write()

    def enis(self, cred, params):
        status, root = self.call(cred, dict(params, Action="DescribeNetworkInterfaces"))
        if status != 200 or root is None:
            return []
        ns = _ns(root)
        return [Eni(item, ns) for item in root.iterfind(f"{ns}networkInterfaceSet/{ns}item")]

    def eni(self, cred, eni_id):
        found = [e for e in self.enis(cred, {"NetworkInterfaceId.1": eni_id}) if e.id == eni_id]
        return found[0] if found else None

    def subnet_cidr(self, cred, subnet_id):
        status, root = self.call(cred, {"Action": "DescribeSubnets", "SubnetId.1": subnet_id})
        if status != 200 or root is None:
            return None
        ns = _ns(root)
        text = root.findtext(f"{ns}subnetSet/{ns}item/{ns}cidrBlock")
        try:
            return ipaddress.IPv4Network(text) if text else None
        except ValueError:
            return None

    def addresses(self, cred, params):
        """moto's DescribeAddresses as dicts, with the private IPs the model recorded."""
        status, root = self.call(cred, dict(params, Action="DescribeAddresses"))
        if status != 200 or root is None:
            return []
        ns = _ns(root)
        out = []
        for item in root.iterfind(f"{ns}addressesSet/{ns}item"):
            a = {k: item.findtext(ns + tag) or None for k, tag in (
                ("allocation_id", "allocationId"), ("public_ip", "publicIp"), ("association_id", "associationId"),
                ("eni", "networkInterfaceId"), ("private_ip", "privateIpAddress"))}
            with self.lock:
                a["private_ip"] = self.assoc_private.get(a["association_id"], a["private_ip"])
            out.append(a)
        return out

    def assign(self, cred, p, forward):
        eni_id, ips = p.get("NetworkInterfaceId"), _indexed(p, "PrivateIpAddress")
        if not eni_id or not ips:
            return forward(), None  # a count of new addresses, or a malformed request: moto's answer
        eni = self.eni(cred, eni_id)
        if eni is None:
            return forward(), None  # moto answers InvalidNetworkInterfaceID.NotFound
        cidr = self.subnet_cidr(cred, eni.subnet)
        for ip in ips:
            try:
                addr = ipaddress.IPv4Address(ip)
            except ValueError:
                return self.refuse("InvalidParameterValue", f"invalid value for parameter address: {ip}")
            if cidr is None:
                continue
            if addr not in cidr:
                return self.refuse("InvalidParameterValue", "Address does not fall within the subnet's address range")
            if int(addr) - int(cidr.network_address) < 4 or addr == cidr.broadcast_address:
                return self.refuse("InvalidParameterValue", f"Address {ip} is in subnet's reserved address range")
        allow = p.get("AllowReassignment", "").lower() == "true"
        moves, denied = {}, []
        for other in self.enis(cred, {"Filter.1.Name": "subnet-id", "Filter.1.Value.1": eni.subnet}):
            if other.id == eni_id:
                continue
            for ip in ips:
                if ip not in other.addresses:
                    continue
                if other.addresses[ip]:
                    return self.refuse("InvalidParameterValue",
                                       f"Address {ip} is the primary private IPv4 address of {other.id}: "
                                       "only a secondary address can be reassigned")
                if allow:
                    moves.setdefault(other.id, []).append(ip)
                elif ip not in denied:
                    denied.append(ip)
        if denied:
            return self.refuse("InvalidParameterValue", f"[{', '.join(denied)}] assigned, but move is not allowed.")

        def write():
            # EC2 moves the address: it leaves the old ENI. moto would keep it there too.
            for old, olds in moves.items():
                self.call(cred, dict(_numbered("PrivateIpAddress", olds), Action="UnassignPrivateIpAddresses",
                                     NetworkInterfaceId=old))
            result = forward()
            if not 200 <= result[0] < 300:
                for old, olds in moves.items():  # put them back: a failed call changes nothing
                    self.call(cred, dict(_numbered("PrivateIpAddress", olds), Action="AssignPrivateIpAddresses",
                                         NetworkInterfaceId=old))
            return result

        result = self.versioned(cred, NETWORK_INTERFACE, [eni_id, *sorted(moves)], write)
        if 200 <= result[0] < 300 and moves:
            self.count("moved", sum(len(v) for v in moves.values()))
        return result, None

    def unassign(self, cred, p, forward):
        eni_id, ips = p.get("NetworkInterfaceId"), _indexed(p, "PrivateIpAddress")
        if not eni_id or not ips:
            return forward(), None
        eni = self.eni(cred, eni_id)
        if eni is None:
            return forward(), None
        if any(ip not in eni.addresses for ip in ips):
            return self.refuse("InvalidParameterValue", f"Some of the specified addresses are not assigned to interface {eni_id}")
        primary = [ip for ip in ips if eni.addresses[ip]]
        if primary:
            return self.refuse("InvalidParameterValue",
                               f"Value ({primary[0]}) for parameter privateIpAddress is invalid. "
                               "The primary IP address of an interface cannot be unassigned.")
        return self.versioned(cred, NETWORK_INTERFACE, [eni_id], forward), None

    def associate(self, cred, p, forward):
        alloc, public, eni_id = p.get("AllocationId"), p.get("PublicIp"), p.get("NetworkInterfaceId")
        if not eni_id or not (alloc or public) or p.get("InstanceId"):
            return forward(), None  # an instance target, or a malformed request: moto's answer
        found = self.addresses(cred, {"AllocationId.1": alloc} if alloc else {"PublicIp.1": public})
        eni = self.eni(cred, eni_id)
        if not found or eni is None:
            return forward(), None  # moto answers the NotFound error
        addr = found[0]
        priv = p.get("PrivateIpAddress")
        if priv and priv not in eni.addresses:
            return self.refuse("InvalidParameterValue",
                               f"Value ({priv}) for parameter privateIpAddress is invalid: "
                               f"it is not a private IP address of {eni_id}")
        target = priv or eni.primary
        here = addr["association_id"] and addr["eni"] == eni_id and addr["private_ip"] == target
        if addr["association_id"] and not here and p.get("AllowReassociation", "").lower() != "true":
            return self.refuse("Resource.AlreadyAssociated",
                               f"resource {addr['allocation_id'] or addr['public_ip']} is already associated "
                               f"with associate-id {addr['association_id']}")
        # One Elastic IP per private address: another one there is disassociated (EC2 keeps it allocated).
        others = [a for a in self.addresses(cred, {"Filter.1.Name": "network-interface-id", "Filter.1.Value.1": eni_id})
                  if a["association_id"] and a["allocation_id"] != addr["allocation_id"] and a["private_ip"] == target]

        def write():
            # Disassociate first: moto's reassociation leaves the old ENI showing the public IP.
            for a in ([addr] if addr["association_id"] else []) + others:
                self.call(cred, {"Action": "DisassociateAddress", "AssociationId": a["association_id"]})
            result = forward()
            if 200 <= result[0] < 300:
                try:
                    root = ET.fromstring(result[3])
                    assoc = root.findtext(_ns(root) + "associationId")
                except ET.ParseError:
                    assoc = None
                if assoc:
                    with self.lock:
                        self.assoc_private[assoc] = target
                    if priv and priv != eni.primary:
                        self.count("eip_private_ip")
            elif addr["association_id"] and addr["eni"]:  # a failed call changes nothing
                status, root = self.call(cred, {"Action": "AssociateAddress", "AllocationId": addr["allocation_id"],
                                                "NetworkInterfaceId": addr["eni"], "AllowReassociation": "true"})
                if status == 200 and root is not None and addr["private_ip"]:
                    with self.lock:
                        self.assoc_private[root.findtext(_ns(root) + "associationId")] = addr["private_ip"]
            return result

        ids = [addr["allocation_id"]] + [a["allocation_id"] for a in others]
        result = self.versioned(cred, ADDRESS, ids, write)
        if 200 <= result[0] < 300 and addr["association_id"] and not here:
            self.count("reassociated")
        return result, None

    def disassociate(self, cred, p, forward):
        assoc, public = p.get("AssociationId"), p.get("PublicIp")
        if assoc:
            found = self.addresses(cred, {"Filter.1.Name": "association-id", "Filter.1.Value.1": assoc})
        elif public:
            found = self.addresses(cred, {"PublicIp.1": public})
        else:
            found = []
        if not found:
            return forward(), None  # moto answers InvalidAssociationID.NotFound (as EC2 does)
        return self.versioned(cred, ADDRESS, [found[0]["allocation_id"]], forward), None

    def address_describe(self, cred, kind, params, forward, forward_params):
        """DescribeNetworkInterfaces / DescribeAddresses: moto's answer corrected (the private-IP
        filters match every private IPv4, an EIP shows the private IP it was associated with) and,
        with address consistency, answered stale. Answers ((status, ...), [ids answered stale])."""
        values = None
        if kind is NETWORK_INTERFACE:
            rest, values = _split_filters(params, ENI_ADDRESS_FILTERS)
        result = forward_params(rest) if values else forward()
        status, reason, headers, data = result
        if status != 200 or any(k.lower() == "content-encoding" for k, _ in headers):
            return result, []
        try:
            root = ET.fromstring(data)
        except ET.ParseError:
            return result, []
        stale = self.substitute(kind, cred[1], root) if self.cfg["address_consistency"]["enabled"] else []
        changed = False
        ns = _ns(root)
        if values:
            set_el = root.find(ns + kind.set_tag)
            for item in list(set_el) if set_el is not None else ():
                have = Eni(item, ns).addresses
                if not all(any(fnmatch.fnmatchcase(ip, pat) for ip in have for pat in pats) for pats in values):
                    set_el.remove(item)
                    changed = True
            if changed:
                self.count("filtered")
        if kind is ADDRESS:
            for item in root.iterfind(f"{ns}addressesSet/{ns}item"):
                # moto writes an unassociated address's instanceId/networkInterfaceId empty; EC2 omits them.
                for tag in ("instanceId", "networkInterfaceId"):
                    el = item.find(ns + tag)
                    if el is not None and not (el.text or "").strip():
                        item.remove(el)
                        changed = True
                with self.lock:
                    want = self.assoc_private.get(item.findtext(ns + "associationId"))
                el = item.find(ns + "privateIpAddress")
                if want and (el is None or el.text != want):
                    if el is None:
                        el = ET.SubElement(item, ns + "privateIpAddress")
                    el.text = want
                    changed = True
        if not stale and not changed:
            return result, []
        return (status, reason, headers, serialize(root, data)), stale

    # -- GET /_model ------------------------------------------------------------------------
    def stats(self):
        now = time.monotonic()
        mode = self.cfg["throttle"]["refill_mode"]
        with self.lock:
            buckets = {}
            for (region, action), b in sorted(self.buckets.items()):
                b.advance(now, mode)
                buckets.setdefault(region, {})[action] = {
                    "category": b.category, "level": round(b.level, 3), "size": b.size, "refill": b.refill,
                    # "second" mode: when the next refill tokens arrive (null in continuous mode)
                    "next_refill_ms": round((1.0 - (now - b.anchor) % 1.0) * 1000, 1) if mode == "second" else None,
                }
            resources = {}
            for (region, kind, rid), res in sorted(self.resources.items()):
                resources[rid] = {
                    "kind": kind,
                    "region": region,
                    "versions": len(res.versions),
                    "writes_in_flight": res.writing,
                    "visible_in_ms": round(max(0.0, (res.versions[-1].visible_from - now) * 1000), 1)
                    if res.versions else 0.0,
                    # ms until each version not yet visible becomes visible, oldest write first
                    "pending_ms": [round((v.visible_from - now) * 1000, 1) for v in res.versions
                                   if v.visible_from > now],
                }
            return {
                "enabled": True,
                "config": self.cfg,
                "since_s": round(now - self.started, 3),
                "requests": dict(self.requests),
                "throttled": dict(self.throttled),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "stale": dict(self.stale),
                "clamped": self.clamped,
                "snapshots": self.snapshots,
                "snapshot_failures": self.snapshot_failures,
                "addresses": dict(self.address_counts),
                "refused": dict(self.refused),
                "buckets": buckets,
                "resources": resources,
            }


def credential(headers):
    """(access key id, region, session token) of a SigV4-signed request; moto's defaults when
    the request carries no credential scope."""
    m = CREDENTIAL_RE.search(headers.get("Authorization") or "")
    akid, region = (m.group(1), m.group(2)) if m else ("AKIDEXAMPLE", "us-east-1")
    return akid, region, headers.get("X-Amz-Security-Token")


def signed_for_other_service(headers):
    """True for a request signed for another service than EC2 (STS through the same moto port):
    the EC2 model leaves it alone."""
    m = CREDENTIAL_RE.search(headers.get("Authorization") or "")
    return m is not None and m.group(3) != "ec2"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    state: State = None
    verbose = False

    def log_message(self, fmt, *a):
        if self.verbose:
            sys.stderr.write("faultproxy: " + (fmt % a) + "\n")

    # -- plumbing ---------------------------------------------------------------------------
    def send_body(self, status, body=b"", ctype="text/plain", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def control(self, body):
        st = self.state
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path == "/_faults" and self.command == "GET":
                with st.lock:
                    out = json.dumps(st.rules).encode()
                return self.send_body(200, out, "application/json")
            if path in ("/_faults", "/_faults/append") and self.command == "POST":
                rules = json.loads(body or b"[]")
                if isinstance(rules, dict):
                    rules = [rules]
                st.set_rules(rules, append=path.endswith("/append"))
                return self.send_body(200, b"{}", "application/json")
            if path == "/_faults" and self.command == "DELETE":
                st.set_rules([])
                return self.send_body(200, b"{}", "application/json")
            if path == "/_log" and self.command == "GET":
                with st.lock:
                    out = json.dumps(st.log).encode()
                return self.send_body(200, out, "application/json")
            if path == "/_log" and self.command == "DELETE":
                with st.lock:
                    st.log = []
                return self.send_body(200, b"{}", "application/json")
            if path == "/_model" and self.command == "POST":
                cfg = json.loads(body or b"{}")
                model = st.set_model(check_model(cfg))
                return self.send_body(200, json.dumps(model.stats()).encode(), "application/json")
            if path == "/_model" and self.command == "GET":
                with st.lock:
                    model = st.model
                out = model.stats() if model is not None else {"enabled": False, "config": None}
                return self.send_body(200, json.dumps(out).encode(), "application/json")
            if path == "/_model" and self.command == "DELETE":
                st.set_model(None)
                return self.send_body(200, b"{}", "application/json")
        except (ValueError, TypeError) as e:
            return self.send_body(400, json.dumps({"error": str(e)}).encode(), "application/json")
        return self.send_body(404, b"no such control path")

    def forward(self, body, method=None, path=None, ctype=None):
        """Sends the request upstream; returns (status, reason, headers, body)."""
        up = self.state.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if ctype:
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                headers["Content-Type"] = ctype
            headers["Content-Length"] = str(len(body))
            conn.request(method or self.command, path or self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
            return resp.status, resp.reason, out_headers, data
        finally:
            conn.close()

    def forward_params(self, params):
        """Sends other EC2 parameters than the request's (a POST form to the same path; moto
        checks no signature)."""
        body = urllib.parse.urlencode(params).encode()
        return self.forward(body, "POST", urllib.parse.urlsplit(self.path).path or "/",
                            "application/x-www-form-urlencoded; charset=utf-8")

    def relay(self, status, headers, data):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def reset(self):
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            # The buffered reader holds a reference that would defer the real close (and send
            # FIN at shutdown first): drop it, then close now.
            self.rfile.close()
            self.connection.close()
        except OSError:
            pass

    def hang(self, max_s):
        self.close_connection = True
        deadline = time.monotonic() + max_s
        self.connection.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                if not self.connection.recv(65536):
                    return  # the client gave up
            except socket.timeout:
                continue
            except OSError:
                return

    # -- the request ------------------------------------------------------------------------
    def handle_any(self):
        body = self.read_body()
        split = urllib.parse.urlsplit(self.path)
        if split.path.startswith("/_"):
            return self.control(body)
        params = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        ctype = self.headers.get("Content-Type", "")
        if body and "x-www-form-urlencoded" in ctype:
            try:
                params.update(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                pass
        req = {
            "method": self.command,
            "path": split.path,
            "action": params.get("Action"),
            "params": params,
        }
        t0 = time.monotonic()
        entry = {
            "method": self.command,
            "path": split.path,
            "action": req["action"],
            "params": {k: v for k, v in params.items() if k not in ("Action", "Version")},
            "fault": None,
        }
        token = self.headers.get(TOKEN_HEADER)
        with self.state.lock:
            token_dead = token is not None and token in self.state.expired_tokens
            model = self.state.model
        rule = None if token_dead else self.state.take(req)
        # The model sees EC2 requests (they name an Action) that no rule took.
        if token_dead or rule is not None or not req["action"] or signed_for_other_service(self.headers):
            model = None
        # Logged before the answer goes out: a client that reads /_log right after its call
        # returns must find every request it made (status and time are filled in below).
        if token_dead:
            entry["fault"] = "expired_token"
        elif rule is not None:
            entry["fault"] = rule.get("name") or rule["fault"]
        entry["status"] = None
        self.state.record(entry)
        try:
            if model is not None:
                outcome = self.modelled(model, req, body, entry)
            else:
                outcome = self.apply(rule, body, token, token_dead)
        except (BrokenPipeError, ConnectionResetError):
            outcome = "client-gone"
            self.close_connection = True
        except (OSError, http.client.HTTPException) as e:
            outcome = 502
            try:
                self.send_body(502, f"faultproxy: upstream failed: {e}".encode())
            except OSError:
                self.close_connection = True
        with self.state.lock:
            entry["status"] = outcome
            entry["ms"] = round((time.monotonic() - t0) * 1000, 1)

    def apply(self, rule, body, token, token_dead):
        """Carries out the rule (None = forward); returns the status logged."""
        if token_dead:
            self.send_body(401, b"")
            return 401
        fault = rule["fault"] if rule else None
        if fault is None:
            status, _, headers, data = self.forward(body)
            self.relay(status, headers, data)
            return status
        if fault == "delay":
            ms = float(rule.get("ms", 1000)) / 1000.0
            if rule.get("where") == "after":
                status, _, headers, data = self.forward(body)
                time.sleep(ms)
            else:
                time.sleep(ms)
                status, _, headers, data = self.forward(body)
            self.relay(status, headers, data)
            return status
        if fault == "status":
            status = int(rule.get("status", 500))
            self.send_body(status, str(rule.get("body", "")).encode(), rule.get("content_type", "text/plain"))
            return status
        if fault == "throttle":
            code = rule.get("code", "RequestLimitExceeded")
            status = int(rule.get("status", 503 if code == "RequestLimitExceeded" else 400))
            message = rule.get("message", "Request limit exceeded." if code == "RequestLimitExceeded" else "Rate exceeded")
            self.send_body(status, ec2_error_xml(code, message), "text/xml;charset=UTF-8")
            return status
        if fault == "ec2_error":
            status = int(rule.get("status", 400))
            self.send_body(status, ec2_error_xml(rule.get("code", "InternalError"), rule.get("message", "An internal error has occurred")), "text/xml;charset=UTF-8")
            return status
        if fault == "unauthorized":
            action = self.current_action(body)
            message = rule.get(
                "message",
                "You are not authorized to perform this operation. User: "
                "arn:aws:sts::123456789012:assumed-role/irisvip-test-role/i-0123456789abcdef0 is not authorized "
                f"to perform: ec2:{action} on resource: arn:aws:ec2:us-east-1:123456789012:"
                f"{UNAUTHORIZED_RESOURCE.get(action, 'route-table/*')} "
                "because no identity-based policy allows the ec2:" + action + " action. "
                "Encoded authorization failure message: AbCdEf0123456789",
            )
            status = int(rule.get("status", 403))
            self.send_body(status, ec2_error_xml("UnauthorizedOperation", message), "text/xml;charset=UTF-8")
            return status
        if fault == "reset":
            self.reset()
            return "reset"
        if fault == "close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return "close"
        if fault == "hang":
            self.hang(float(rule.get("max_s", 120)))
            return "hang"
        if fault == "trickle":
            status, _, headers, data = self.forward(body)
            chunk = max(1, int(rule.get("chunk", 1)))
            pause = float(rule.get("interval_ms", 100)) / 1000.0
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            for i in range(0, len(data), chunk):
                time.sleep(pause)
                self.wfile.write(data[i:i + chunk])
                self.wfile.flush()
            return status
        if fault == "canned":
            status = int(rule.get("status", 200))
            self.send_body(status, str(rule.get("body", "")).encode(), rule.get("content_type", "text/xml;charset=UTF-8"))
            return status
        if fault == "expire_token":
            if token is not None:
                with self.state.lock:
                    self.state.expired_tokens.add(token)
            self.send_body(401, b"")
            return 401
        raise AssertionError(fault)

    def modelled(self, model, req, body, entry):
        """Forwards an EC2 request through the model; returns the status logged."""
        action = req["action"]
        model.enter(action)
        try:
            # Service latency: each request waits in its own thread, so N at once take ~1 wait.
            wait = model.draw_ms(model.cfg["latency_ms"])
            if wait:
                time.sleep(wait / 1000.0)
            cred = credential(self.headers)
            if not model.admit(cred[1], action):
                with self.state.lock:
                    entry["fault"] = "model:throttle"
                self.send_body(503, ec2_error_xml("RequestLimitExceeded", "Request limit exceeded."),
                               "text/xml;charset=UTF-8")
                return 503
            semantics = model.cfg["addresses"]["enabled"]
            if semantics and action in ADDRESS_MUTATIONS:
                (status, _, headers, data), note = model.address_mutation(
                    cred, action, req["params"], lambda: self.forward(body))
                if note:
                    with self.state.lock:
                        entry["fault"] = note
            elif semantics and action in ADDRESS_DESCRIBES:
                (status, _, headers, data), stale = model.address_describe(
                    cred, ADDRESS_DESCRIBES[action], req["params"], lambda: self.forward(body), self.forward_params)
                if stale:
                    with self.state.lock:
                        entry["stale"] = stale
            else:
                consistent = model.cfg["consistency"]["enabled"]
                target = KIND_BY_MUTATION.get(action) if consistent else None
                rid = req["params"].get(target[1]) if target else None
                if rid:
                    status, _, headers, data = model.mutate(cred, target[0], rid, lambda: self.forward(body))
                else:
                    status, _, headers, data = self.forward(body)
                kind = KIND_BY_DESCRIBE.get(action) if consistent else None
                encoded = any(k.lower() == "content-encoding" for k, _ in headers)
                if kind is not None and status == 200 and not encoded:
                    data, stale = model.rewrite(kind, cred[1], data)
                    if stale:
                        with self.state.lock:
                            entry["stale"] = stale
            wait = model.draw_ms(model.cfg["answer_latency_ms"])
            if wait:
                time.sleep(wait / 1000.0)
            self.relay(status, headers, data)
            return status
        finally:
            model.leave()

    def current_action(self, body):
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        try:
            params.update(urllib.parse.parse_qsl(body.decode("utf-8")))
        except UnicodeDecodeError:
            pass
        return params.get("Action", "UnknownAction")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of connections beyond it waits for SYN
    # retransmits (1 s and more), which would distort bursts and latency measurements.
    request_queue_size = 256


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of moto or an IMDS stand-in")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--script", help="JSON file with the initial list of rules")
    p.add_argument("--tls-cert", help="PEM chain for a second, HTTPS listener")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--model", help="turn the EC2 model on: JSON config, or @file holding it (docs/ec2-model.md)")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    up = urllib.parse.urlsplit(args.upstream)
    if up.scheme != "http" or up.hostname not in ("127.0.0.1", "localhost", "::1") or not up.port:
        p.error("--upstream must be http://127.0.0.1:PORT (loopback only)")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        p.error("--host must be a loopback address")
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    state = State(up)
    if args.model:
        try:
            state.set_model(load_model_arg(args.model))
        except (OSError, ValueError, TypeError) as e:
            p.error(f"--model: {e}")
    if args.script:
        with open(args.script, encoding="utf-8") as f:
            state.set_rules(json.load(f))
    Handler.state = state
    Handler.verbose = args.verbose
    server = Server((args.host, args.port), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        tls = Server((args.host, 0), Handler)
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        threading.Thread(target=tls.serve_forever, daemon=True).start()
        print(f"TLSPORT {tls.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
