#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for EC2 (moto) and IMDS stand-ins. Standard library only.

Sits between irisvip and its upstream: point the library at it with `endpoint=http://127.0.0.1:PORT`
in the config (EC2) or `AWS_EC2_METADATA_SERVICE_ENDPOINT` (IMDS). Every request is matched
against a list of rules, in order; the first rule that matches and still has a count left
decides what happens to it. A request no rule takes is forwarded unchanged.

    faultproxy.py --upstream http://127.0.0.1:5000 [--port 0] [--script rules.json]

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
"hang"), "ms"}.

The EC2 error body is what EC2 sends:
<Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors><RequestID>..</RequestID></Response>
"""

import argparse
import http.client
import json
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid
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
        except (ValueError, TypeError) as e:
            return self.send_body(400, json.dumps({"error": str(e)}).encode(), "application/json")
        return self.send_body(404, b"no such control path")

    def forward(self, body):
        """Sends the request upstream; returns (status, reason, headers, body)."""
        up = self.state.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
            return resp.status, resp.reason, out_headers, data
        finally:
            conn.close()

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
        rule = None if token_dead else self.state.take(req)
        # Logged before the answer goes out: a client that reads /_log right after its call
        # returns must find every request it made (status and time are filled in below).
        if token_dead:
            entry["fault"] = "expired_token"
        elif rule is not None:
            entry["fault"] = rule.get("name") or rule["fault"]
        entry["status"] = None
        self.state.record(entry)
        try:
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
                f"to perform: ec2:{action} on resource: arn:aws:ec2:us-east-1:123456789012:route-table/* "
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

    def current_action(self, body):
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        try:
            params.update(urllib.parse.parse_qsl(body.decode("utf-8")))
        except UnicodeDecodeError:
            pass
        return params.get("Action", "UnknownAction")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of moto or an IMDS stand-in")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--script", help="JSON file with the initial list of rules")
    p.add_argument("--tls-cert", help="PEM chain for a second, HTTPS listener")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
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
    if args.script:
        with open(args.script, encoding="utf-8") as f:
            state.set_rules(json.load(f))
    Handler.state = state
    Handler.verbose = args.verbose
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        tls = ThreadingHTTPServer((args.host, 0), Handler)
        tls.daemon_threads = True
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        threading.Thread(target=tls.serve_forever, daemon=True).start()
        print(f"TLSPORT {tls.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
