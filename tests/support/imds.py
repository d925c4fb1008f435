#!/usr/bin/env python3
"""An IMDSv2 stand-in for one EC2 instance.

Serves what irisvip and the AWS SDK read from 169.254.169.254, and enforces IMDSv2 the way
EC2 does when tokens are required: a token from PUT /latest/api/token (with the TTL header)
must accompany every GET, an unknown or expired token gets 401, a GET without one gets 401.

    imds.py --instance-id i-1 --mac 0e:.. --eni eni-1 --vpc vpc-1 --region us-east-1 [--port 0]

Prints "PORT <n>" on stdout once listening. GET /_stats (no token) answers counters as JSON.
With --credentials it also serves an instance-profile role (test credentials only).
With --allow-imdsv1 a GET without a token is answered too (IMDSv1); a wrong token still gets 401.
"""

import argparse
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"


class State:
    def __init__(self, args):
        self.args = args
        self.tokens = {}  # token -> expiry (monotonic)
        self.lock = threading.Lock()
        self.stats = {"token_puts": 0, "gets": 0, "unauthorized": 0, "not_found": 0}
        mac = args.mac
        base = f"/latest/meta-data/network/interfaces/macs/{mac}"
        self.values = {
            "/latest/meta-data/instance-id": args.instance_id,
            "/latest/meta-data/mac": mac,
            "/latest/meta-data/placement/region": args.region,
            "/latest/meta-data/placement/availability-zone": args.az or args.region + "a",
            "/latest/meta-data/local-ipv4": args.local_ipv4,
            f"{base}/interface-id": args.eni,
            f"{base}/vpc-id": args.vpc,
            f"{base}/subnet-id": args.subnet,
            "/latest/meta-data/network/interfaces/macs/": mac + "/",
        }
        if args.credentials:
            role = "irisvip-test-role"
            self.values["/latest/meta-data/iam/security-credentials/"] = role
            self.values[f"/latest/meta-data/iam/security-credentials/{role}"] = json.dumps({
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": args.access_key,
                "SecretAccessKey": args.secret_key,
                "Token": args.session_token,
                "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 6 * 3600)),
                "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            })
            self.values["/latest/meta-data/iam/info"] = json.dumps({"Code": "Success", "InstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/irisvip-test"})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle + delayed ACK add ~40 ms a request.
    disable_nagle_algorithm = True
    state: State = None

    def log_message(self, fmt, *a):  # quiet: tests read stdout
        if self.state.args.verbose:
            sys.stderr.write("imds: " + (fmt % a) + "\n")

    def reply(self, code, body=b"", ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path != "/latest/api/token":
            return self.reply(404)
        ttl = self.headers.get(TOKEN_TTL_HEADER)
        if ttl is None or not ttl.isdigit() or not (1 <= int(ttl) <= 21600):
            return self.reply(400, b"missing or invalid token TTL")
        ttl = min(int(ttl), self.state.args.max_token_ttl)
        token = secrets.token_urlsafe(32)
        with self.state.lock:
            self.state.tokens[token] = time.monotonic() + ttl
            self.state.stats["token_puts"] += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header(TOKEN_TTL_HEADER, str(ttl))
        self.send_header("Content-Length", str(len(token)))
        self.end_headers()
        self.wfile.write(token.encode())

    def do_GET(self):
        if self.path == "/_stats":
            with self.state.lock:
                body = json.dumps(self.state.stats).encode()
            return self.reply(200, body, "application/json")
        token = self.headers.get(TOKEN_HEADER)
        with self.state.lock:
            self.state.stats["gets"] += 1
            expiry = self.state.tokens.get(token or "")
            valid = expiry is not None and expiry > time.monotonic()
            if token is None and self.state.args.allow_imdsv1:
                valid = True  # IMDSv1: a plain GET without a token (opt-in, as on instances that allow it)
            if not valid:
                self.state.stats["unauthorized"] += 1
        if not valid:
            return self.reply(401, b"")
        value = self.state.values.get(self.path)
        if value is None:
            with self.state.lock:
                self.state.stats["not_found"] += 1
            return self.reply(404, b"Not Found")
        self.reply(200, value.encode())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--instance-id", required=True)
    p.add_argument("--mac", required=True)
    p.add_argument("--eni", required=True)
    p.add_argument("--vpc", required=True)
    p.add_argument("--subnet", default="subnet-00000000")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--az", default=None)
    p.add_argument("--local-ipv4", default="10.0.0.10")
    p.add_argument("--max-token-ttl", type=int, default=21600, help="cap token lifetimes (to test expiry)")
    p.add_argument("--credentials", action="store_true", help="serve an instance-profile role")
    p.add_argument("--access-key", default="AKIAIRISVIPTEST00001")
    p.add_argument("--secret-key", default="irisvip-test-secret-key")
    p.add_argument("--session-token", default="irisvip-test-session-token")
    p.add_argument("--allow-imdsv1", action="store_true", help="also answer GETs that carry no token (IMDSv1)")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    Handler.state = State(args)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
