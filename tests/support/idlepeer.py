#!/usr/bin/env python3
"""A keep-alive HTTP(S) peer that closes its idle connections under the client. Standard library only.

Forwards each request to --upstream (moto or an IMDS stand-in, loopback only) and answers it
with HTTP/1.1 keep-alive, so the client pools the connection; then, --after-ms later (default
50), closes that connection as a load balancer or an endpoint does with an idle one: with a TCP
RST (SO_LINGER 0), or with --fin a plain close (FIN, and over TLS no close_notify first). The
client's next use of the pooled connection meets a socket the peer has closed.

Why it matters (docs/reliability.md, "Signals and the host process"): over TLS with --fin, the
client's next request goes out on the half-closed socket, the peer answers it with RST, the read
sees EOF, and rustls then sends its close_notify alert with `writev` (no MSG_NOSIGNAL) into the
reset socket: EPIPE, and SIGPIPE for the calling thread. A host with SIGPIPE at its default
action dies of it.

    idlepeer.py --upstream http://127.0.0.1:5000 [--port 0] [--after-ms 50] [--fin]
                [--tls-cert server.pem --tls-key server.key]

Prints "PORT <n>" on stdout once listening (with TLS, then "CTLPORT <n>": a plain-HTTP listener
for the control path). GET /_stats (answered, then closed normally) gives counters as JSON:
{"requests", "resets", "fins"}.
"""

import argparse
import http.client
import json
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "content-length"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    upstream = None
    after_s = 0.05
    fin = False
    lock = threading.Lock()
    stats = {"requests": 0, "resets": 0, "fins": 0}

    def log_message(self, fmt, *a):
        pass

    def handle(self):
        """One request per connection, then the idle connection is closed under the client."""
        self.close_connection = True
        self.handle_one_request()
        if getattr(self, "forwarded", False):
            time.sleep(self.after_s)
            self.kill_connection()

    def kill_connection(self):
        try:
            if self.fin:
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.connection.close()
        except OSError:
            pass
        with self.lock:
            self.stats["fins" if self.fin else "resets"] += 1

    def reply(self, status, headers, data, keep_alive):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "keep-alive" if keep_alive else "close")
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if urllib.parse.urlsplit(self.path).path == "/_stats":
            with self.lock:
                data = json.dumps(self.stats).encode()
            return self.reply(200, [("Content-Type", "application/json")], data, keep_alive=False)
        with self.lock:
            self.stats["requests"] += 1
        up = self.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
            status = resp.status
        finally:
            conn.close()
        self.forwarded = True
        self.reply(status, out, data, keep_alive=True)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", required=True, help="http://127.0.0.1:PORT of moto or an IMDS stand-in")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--after-ms", type=float, default=50.0, help="idle time before the connection is killed")
    p.add_argument("--fin", action="store_true", help="close with FIN instead of RST")
    p.add_argument("--tls-cert", help="PEM chain: serve HTTPS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = p.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    up = urllib.parse.urlsplit(args.upstream)
    if up.scheme != "http" or up.hostname not in ("127.0.0.1", "localhost", "::1") or not up.port:
        p.error("--upstream must be http://127.0.0.1:PORT (loopback only)")
    Handler.upstream = up
    Handler.after_s = args.after_ms / 1000.0
    Handler.fin = args.fin
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    if args.tls_cert:
        control = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        control.daemon_threads = True
        threading.Thread(target=control.serve_forever, daemon=True).start()
        print(f"CTLPORT {control.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
