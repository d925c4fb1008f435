#!/usr/bin/env python3
"""Runs in a member namespace: the TCP service clients reach through the VIP.

    vip_service.py --bind 192.168.240.10 --port 1972 --name A

Stands for what a mirror serves on its VIP (the superserver, an HL7/MLLP listener): it answers
every line received with the member's name and a newline, on as many connections as clients
keep open, for as long as they keep them. Bound to the VIP itself, so a packet can only be
answered by the member it reached. Prints "READY" once listening.
"""

import argparse
import selectors
import signal
import socket
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", required=True)
    a = p.parse_args()
    reply = (a.name + "\n").encode()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.bind, a.port))
    srv.listen(1024)
    srv.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ, None)
    print("READY", flush=True)

    while True:
        for key, _ in sel.select():
            if key.data is None:  # the listener
                try:
                    conn, _ = srv.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(conn, selectors.EVENT_READ, bytearray())
                continue
            conn, buf = key.fileobj, key.data
            try:
                data = conn.recv(4096)
            except OSError:  # reset by the client (probes close with RST), or the link
                data = b""
            if not data:
                sel.unregister(conn)
                conn.close()
                continue
            buf += data
            lines = buf.count(b"\n")
            if lines:
                del buf[: buf.rfind(b"\n") + 1]
                try:
                    conn.sendall(reply * lines)
                except OSError:
                    sel.unregister(conn)
                    conn.close()


if __name__ == "__main__":
    main()
