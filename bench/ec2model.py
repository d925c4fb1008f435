#!/usr/bin/env python3
"""The fault proxy with its EC2 model (tests/support/faultproxy.py), plus what the benchmark reads.

    ec2model.py --upstream http://127.0.0.1:PORT --tls-cert server.pem --tls-key server.key [--model JSON]

Exactly the test suite's proxy and model (same options, same control API, same behaviour), with
two changes for the benchmark: a request signed for STS (role_arn's AssumeRole, which the model
leaves alone) waits the model's service time before it is forwarded, as one more network round on
AWS would; TLS handshakes happen in each connection's own thread. And read-only views, on the
plain port:

    GET /_bench/clock     {"started": S, "now": N}: CLOCK_MONOTONIC seconds of the proxy's start
                          (the zero of every "t" in /_log) and now
    GET /_bench/visible   one entry per route-table write the model recorded a version for:
                          {"table", "routes": {destination: target}, "answered", "visible_from"}
                          (CLOCK_MONOTONIC seconds): from visible_from on, every describe through
                          the model shows that version (or a later one); per ENI or Elastic IP an
                          address write changed: {"kind": "network_interface"|"address", "id",
                          "state": [private IPv4s] | the associated ENI, "answered", "visible_from"}
    GET /_bench/bucket?action=ReplaceRoute
                          {"anchor": S, "level": L, "size", "refill"} of that action's bucket in
                          us-east-1, or {} before its first request: in "second" refill mode the
                          tokens arrive at anchor + 1 s, + 2 s, ...

The visibility log is the exact moment a reader's DescribeRouteTables through the model first
shows a write, without a poller competing with the contenders for moto (which serves one request
at a time) or for the account's describe bucket.
"""

import json
import os
import ssl
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "support"))
import faultproxy as fp  # noqa: E402


class BenchModel(fp.Model):
    def __init__(self, cfg, upstream):
        super().__init__(cfg, upstream)
        self.visible_log = []

    def mutate_many(self, cred, targets, forward, *more, **kw):
        # Every versioned write goes through here: a route table's (mutate), and an address
        # move's (the new holder and the old one in one write, or an Elastic IP).
        # *more, **kw: whatever else the test suite's model passes (e.g. a consistency window).
        result = super().mutate_many(cred, targets, forward, *more, **kw)
        answered = time.monotonic()
        if 200 <= result[0] < 300:
            with self.lock:
                for kind, rid in targets:
                    res = self.resources.get((cred[1], kind.name, rid))
                    # The version this write recorded is the newest: writes to one resource are
                    # serialized by the model, and the benchmark has one writer per resource at a time.
                    if res is None or not res.versions:
                        continue
                    v = res.versions[-1]
                    if kind.name == "route_table":
                        self.visible_log.append({"table": rid, "routes": routes_of(v.item), "answered": answered,
                                                 "visible_from": v.visible_from})
                    else:
                        self.visible_log.append({"kind": kind.name, "id": rid, "state": state_of(kind.name, v.item),
                                                 "answered": answered, "visible_from": v.visible_from})
        return result


def state_of(kind, item):
    """What a reader of an ENI (its private IPv4 addresses) or of an Elastic IP (the ENI it is
    associated with, or None) sees in this version's <item>."""
    ns = item.tag[: item.tag.index("}") + 1] if item.tag.startswith("{") else ""
    if kind == "network_interface":
        return sorted(a.findtext(ns + "privateIpAddress") for a in item.iterfind(f"{ns}privateIpAddressesSet/{ns}item")
                      if a.findtext(ns + "privateIpAddress"))
    return (item.findtext(ns + "networkInterfaceId") or "").strip() or None


def routes_of(item):
    """{destination CIDR: target id} of a routeTable <item> as moto describes it."""
    ns = item.tag[: item.tag.index("}") + 1] if item.tag.startswith("{") else ""
    out = {}
    for route in item.iterfind(f"{ns}routeSet/{ns}item"):
        dest = route.findtext(ns + "destinationCidrBlock") or route.findtext(ns + "destinationIpv6CidrBlock")
        target = (route.findtext(ns + "networkInterfaceId") or route.findtext(ns + "gatewayId")
                  or route.findtext(ns + "instanceId"))
        if dest:
            out[dest] = target
    return out


class BenchHandler(fp.Handler):
    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (OSError, ssl.SSLError):
                # The client gave up or does not trust us: nothing to serve.
                self.request.close()
                raise
        super().setup()

    def apply(self, rule, body, token, token_dead):
        # The model leaves requests signed for another service (STS: role_arn) alone. On AWS
        # AssumeRole is one more network round like any EC2 call, so the bench gives it the
        # model's service time too (no bucket, no consistency): what role_arn costs stays
        # comparable across service times.
        if rule is None and not token_dead and fp.signed_for_other_service(self.headers):
            with self.state.lock:
                model = self.state.model
            if model is not None:
                lo, hi = model.cfg["latency_ms"]
                time.sleep((lo + hi) / 2000.0)  # the bench sets a fixed service time: lo == hi
        return super().apply(rule, body, token, token_dead)

    def control(self, body):
        split = urllib.parse.urlsplit(self.path)
        if not split.path.startswith("/_bench/") or self.command != "GET":
            return super().control(body)
        st = self.state
        with st.lock:
            model = st.model
        if split.path == "/_bench/clock":
            out = {"started": st.started, "now": time.monotonic()}
        elif split.path == "/_bench/visible":
            out = []
            if model is not None:
                with model.lock:
                    out = list(model.visible_log)
        elif split.path == "/_bench/bucket":
            query = dict(urllib.parse.parse_qsl(split.query))
            out = {}
            if model is not None:
                with model.lock:
                    b = model.buckets.get((query.get("region", "us-east-1"), query.get("action", "ReplaceRoute")))
                    if b is not None:
                        out = {"anchor": b.anchor, "level": b.level, "size": b.size, "refill": b.refill}
        else:
            return self.send_body(404, b"no such bench path")
        return self.send_body(200, json.dumps(out).encode(), "application/json")


class _HandshakeInThread:
    """faultproxy's `ssl` as main() sees it, but its listening socket leaves the TLS handshake
    to the connection's own thread (the handler's setup) instead of doing it in accept(): the
    proxy's accept loop would otherwise serialize handshakes (~5 ms each here), so a cold client
    opening 50 connections at once would queue 50 handshakes that EC2 serves in parallel."""

    PROTOCOL_TLS_SERVER = ssl.PROTOCOL_TLS_SERVER

    class SSLContext(ssl.SSLContext):
        def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, **kw):
            return super().wrap_socket(sock, server_side=server_side, do_handshake_on_connect=False, **kw)

    def __getattr__(self, name):
        return getattr(ssl, name)


def main():
    fp.Model = BenchModel  # State.set_model builds the module's Model
    fp.Handler = BenchHandler  # main() serves the module's Handler
    fp.ssl = _HandshakeInThread()
    fp.main()


if __name__ == "__main__":
    main()
