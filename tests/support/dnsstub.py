#!/usr/bin/env python3
"""A DNS server stand-in for the resolver tests, run inside a network namespace of the test.

    dnsstub.py --mode silent|nxdomain [--host 127.0.0.2] [--port 53] [--sink 127.0.0.3:8080] --log FILE

Listens on UDP and TCP at host:port.
  silent    reads every question and never answers (TCP connections are accepted and held):
            a resolver that never answers.
  nxdomain  answers every question NXDOMAIN: the question echoed, QR/RA set, RD copied,
            RCODE 3, no records.
With --sink it also accepts TCP connections on that address and closes them at once (a
stand-in for an endpoint that a hosts-file entry points at), logging each.

Every question and connection is appended to --log as one JSON line:
{"proto": "udp", "name": "ec2.example.test", "qtype": 1, "id": 4711, "t": 0.5} or
{"proto": "sink", "peer": …} ("t": seconds since the stub started; a retransmitted question
keeps its id).
Prints "READY" on stdout once every socket listens. Standard library only.
"""

import argparse
import json
import socket
import struct
import sys
import threading
import time

LOCK = threading.Lock()
T0 = time.monotonic()


def log(path, entry):
    entry["t"] = round(time.monotonic() - T0, 3)
    with LOCK, open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def question(msg):
    """(name, qtype, end offset of the question, id) of a DNS query, or None."""
    if len(msg) < 12 or struct.unpack("!H", msg[4:6])[0] < 1:
        return None
    labels, i = [], 12
    while i < len(msg):
        n = msg[i]
        i += 1
        if n == 0:
            break
        if n & 0xC0 or i + n > len(msg):
            return None  # no compression in a question we accept
        labels.append(msg[i:i + n].decode("ascii", "replace"))
        i += n
    if i + 4 > len(msg):
        return None
    qtype = struct.unpack("!H", msg[i:i + 2])[0]
    return ".".join(labels).lower(), qtype, i + 4, struct.unpack("!H", msg[:2])[0]


def nxdomain(msg, end):
    """The NXDOMAIN answer to `msg`: same ID and question, QR RA RD(copied) RCODE=3."""
    ident, flags = struct.unpack("!HH", msg[:4])
    opcode_rd = flags & 0x7900  # opcode and RD of the query
    reply_flags = 0x8000 | opcode_rd | 0x0080 | 3
    return struct.pack("!HHHHHH", ident, reply_flags, 1, 0, 0, 0) + msg[12:end]


def serve_udp(sock, args):
    while True:
        msg, peer = sock.recvfrom(4096)
        q = question(msg)
        log(args.log, {"proto": "udp", "name": q and q[0], "qtype": q and q[1], "id": q and q[3]})
        if q and args.mode == "nxdomain":
            sock.sendto(nxdomain(msg, q[2]), peer)


def serve_tcp_conn(conn, args):
    held = []
    try:
        while True:
            head = conn.recv(2, socket.MSG_WAITALL)
            if len(head) < 2:
                return
            (length,) = struct.unpack("!H", head)
            msg = conn.recv(length, socket.MSG_WAITALL)
            q = question(msg)
            log(args.log, {"proto": "tcp", "name": q and q[0], "qtype": q and q[1], "id": q and q[3]})
            if q and args.mode == "nxdomain":
                reply = nxdomain(msg, q[2])
                conn.sendall(struct.pack("!H", len(reply)) + reply)
            else:
                held.append(msg)  # silent: read, never answer
    except OSError:
        return
    finally:
        if args.mode != "silent":
            conn.close()


def serve_tcp(sock, args):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve_tcp_conn, args=(conn, args), daemon=True).start()


def serve_sink(sock, args):
    while True:
        conn, peer = sock.accept()
        log(args.log, {"proto": "sink", "peer": f"{peer[0]}:{peer[1]}"})
        conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["silent", "nxdomain"], required=True)
    p.add_argument("--host", default="127.0.0.2")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--sink", default=None, help="host:port that accepts TCP and closes at once")
    p.add_argument("--log", required=True)
    args = p.parse_args()

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((args.host, args.port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((args.host, args.port))
    tcp.listen(64)
    threads = [(serve_udp, udp), (serve_tcp, tcp)]
    if args.sink:
        host, port = args.sink.rsplit(":", 1)
        sink = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sink.bind((host, int(port)))
        sink.listen(64)
        threads.append((serve_sink, sink))
    for target, sock in threads:
        threading.Thread(target=target, args=(sock, args), daemon=True).start()
    print("READY", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
