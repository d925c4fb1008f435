#!/usr/bin/env python3
"""A container credentials endpoint stand-in (ECS task role, EKS Pod Identity): what the SDK
reads from AWS_CONTAINER_CREDENTIALS_FULL_URI.

    containercreds.py --path /creds --access-key AKIA.. --secret-key S --session-token T [--token A]

GET <path> answers {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"} (6 h ahead). With
--token, only a request whose Authorization header is exactly that token is answered; others get
401. Prints "PORT <n>" on stdout once listening on 127.0.0.1. GET /_stats (no auth) answers
{"requests", "authorized", "unauthorized", "paths"}: counts only, never a header's value.
Standard library only; test credentials only.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    args = None
    lock = threading.Lock()
    stats = {"requests": 0, "authorized": 0, "unauthorized": 0, "paths": []}

    def log_message(self, fmt, *a):  # quiet: tests read stdout
        pass

    def reply(self, code, body=b"", ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_stats":
            with self.lock:
                body = json.dumps(self.stats).encode()
            return self.reply(200, body)
        args = self.args
        allowed = args.token is None or self.headers.get("Authorization") == args.token
        with self.lock:
            self.stats["requests"] += 1
            self.stats["paths"].append(self.path)
            self.stats["authorized" if allowed else "unauthorized"] += 1
        if not allowed:
            return self.reply(401, json.dumps({"code": "AccessDenied", "message": "bad token"}).encode())
        if self.path != args.path:
            return self.reply(404, b"{}")
        body = json.dumps({
            "AccessKeyId": args.access_key,
            "SecretAccessKey": args.secret_key,
            "Token": args.session_token,
            "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 6 * 3600)),
        }).encode()
        self.reply(200, body)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--path", default="/creds")
    p.add_argument("--access-key", default="AKIAIRISVIPCONTAINER1")
    p.add_argument("--secret-key", required=True)
    p.add_argument("--session-token", required=True)
    p.add_argument("--token", default=None, help="required Authorization header value")
    Handler.args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", Handler.args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
