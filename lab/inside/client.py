#!/usr/bin/env python3
"""Runs in the `client` namespace: an application that uses the VIP, measured.

    client.py --vip 192.168.240.10 --port 1972 [--conn-interval-ms 7] [--conn-timeout-ms 200]
              [--session-interval-ms 10] [--session-timeout-ms 300]

Two kinds of traffic at once, in one selector loop (no threads, so timing stays honest):
- probes: a new TCP connection every --conn-interval-ms (several may be in flight), each sends
  one line and waits for one reply line, then closes with RST (no TIME_WAIT pile-up); a probe
  without a reply within --conn-timeout-ms fails with "timeout".
- one session: a long-lived connection (an HL7 feed, a superserver client) that sends a line every
  --session-interval-ms once the previous one was answered; a reply missing for
  --session-timeout-ms, a reset or an EOF breaks it, and it is re-opened at once.
Prints one JSON line per outcome, with time.monotonic() times:
  {"k":"c"|"s","t0":sent,"t1":done,"ok":true,"m":"A"}   or  {...,"ok":false,"err":"EHOSTUNREACH"}
  {"k":"open","t":..,"sid":n}   a session (re-)opened
SIGUSR1 pauses it (the lab runs one site's traffic at a time): every connection is dropped with a
RST and no outcome; SIGUSR2 resumes it, with a new session.
"""

import argparse
import errno
import json
import selectors
import signal
import socket
import struct
import sys
import time

RST_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def err_name(code):
    return errno.errorcode.get(code, str(code))


class Client:
    def __init__(self, a):
        self.a = a
        self.addr = (a.vip, a.port)
        self.sel = selectors.DefaultSelector()
        self.out = []
        self.sid = 0
        self.sess = None  # the session's connection state (dict), None while waiting to retry
        self.sess_retry_at = 0.0
        self.paused = False

    def emit(self, **kw):
        self.out.append(json.dumps(kw, separators=(",", ":")))

    def flush(self):
        if self.out:
            sys.stdout.write("\n".join(self.out) + "\n")
            sys.stdout.flush()
            self.out.clear()

    # -- sockets --------------------------------------------------------------------------
    def open(self, kind, timeout_ms):
        s = socket.socket()
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_ON_CLOSE)
        now = time.monotonic()
        st = {"kind": kind, "sock": s, "t0": now, "deadline": now + timeout_ms / 1000.0,
              "phase": "connect", "buf": b""}
        rc = s.connect_ex(self.addr)
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            return st, err_name(rc)
        self.sel.register(s, selectors.EVENT_WRITE, st)
        return st, None

    def close(self, st):
        try:
            self.sel.unregister(st["sock"])
        except (KeyError, ValueError):
            pass
        st["sock"].close()

    def send_line(self, st, line):
        st["sock"].send(line)
        st["phase"] = "reply"
        self.sel.modify(st["sock"], selectors.EVENT_READ, st)

    # -- outcomes -------------------------------------------------------------------------
    def done(self, st, ok, member=None, err=None):
        now = time.monotonic()
        if st["kind"] == "c":
            self.close(st)
            self.emit(k="c", t0=st["t0"], t1=now, ok=ok, **({"m": member} if ok else {"err": err}))
            return
        # session
        if ok:
            self.emit(k="s", t0=st["t0"], t1=now, ok=True, m=member, sid=self.sid)
            st["t_next"] = now + self.a.session_interval_ms / 1000.0
            st["phase"] = "idle"
            self.sel.modify(st["sock"], selectors.EVENT_READ, st)
            return
        self.emit(k="s", t0=st["t0"], t1=now, ok=False, err=err, phase=st["phase"], sid=self.sid)
        self.close(st)
        self.sess = None
        self.sess_retry_at = now if st["phase"] != "connect" else now + self.a.conn_interval_ms / 1000.0

    def on_event(self, st, mask):
        s = st["sock"]
        if st["phase"] == "connect":
            rc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if rc:
                return self.done(st, False, err=err_name(rc))
            if st["kind"] == "s":
                self.sid += 1
                self.emit(k="open", t=time.monotonic(), sid=self.sid)
                st["phase"] = "idle"
                st["t_next"] = time.monotonic()
                self.sel.modify(s, selectors.EVENT_READ, st)
                return
            try:  # t0 stays the connect's start: the SYN is what the route decided on
                return self.send_line(st, b"probe\n")
            except OSError as e:
                return self.done(st, False, err=err_name(e.errno))
        try:
            data = s.recv(256)
        except OSError as e:
            return self.done(st, False, err=err_name(e.errno))
        if not data:
            return self.done(st, False, err="EOF")
        if st["phase"] != "reply":
            return  # an unsolicited byte: ignore
        st["buf"] += data
        if b"\n" in st["buf"]:
            member = st["buf"].split(b"\n", 1)[0].decode(errors="replace")
            st["buf"] = b""
            self.done(st, True, member=member)

    def idle_while_paused(self):
        """Drop every connection without an outcome and wait for SIGUSR2."""
        for key in list(self.sel.get_map().values()):
            self.close(key.data)
        self.sess = None
        self.flush()
        while self.paused:
            time.sleep(0.01)
        self.sess_retry_at = time.monotonic()

    # -- the loop -------------------------------------------------------------------------
    def run(self):
        a = self.a
        next_probe = time.monotonic()
        while True:
            if self.paused:
                self.idle_while_paused()
                next_probe = time.monotonic()
            now = time.monotonic()
            if now >= next_probe:
                st, err = self.open("c", a.conn_timeout_ms)
                if err:
                    self.emit(k="c", t0=st["t0"], t1=time.monotonic(), ok=False, err=err)
                next_probe = max(next_probe + a.conn_interval_ms / 1000.0, now)
            if self.sess is None and now >= self.sess_retry_at:
                st, err = self.open("s", a.session_timeout_ms)
                if err:
                    self.emit(k="s", t0=st["t0"], t1=time.monotonic(), ok=False, err=err, phase="connect", sid=self.sid)
                    self.sess_retry_at = now + a.conn_interval_ms / 1000.0
                else:
                    self.sess = st
            sess = self.sess
            if sess is not None and sess["phase"] == "idle" and now >= sess["t_next"]:
                sess["t0"] = now
                sess["deadline"] = now + a.session_timeout_ms / 1000.0
                try:
                    self.send_line(sess, b"session\n")
                except OSError as e:
                    self.done(sess, False, err=err_name(e.errno))
            # sleep until the next thing is due, 5 ms at most
            due = [next_probe, now + 0.005]
            if self.sess is None:
                due.append(self.sess_retry_at)
            elif self.sess["phase"] == "idle":
                due.append(self.sess["t_next"])
            for key, mask in self.sel.select(max(0.0, min(due) - time.monotonic())):
                self.on_event(key.data, mask)
            now = time.monotonic()
            for key in list(self.sel.get_map().values()):
                st = key.data
                if st["phase"] in ("connect", "reply") and now > st["deadline"]:
                    self.done(st, False, err="timeout")
            self.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--vip", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--conn-interval-ms", type=float, default=7.0)
    p.add_argument("--conn-timeout-ms", type=float, default=200.0)
    p.add_argument("--session-interval-ms", type=float, default=10.0)
    p.add_argument("--session-timeout-ms", type=float, default=300.0)
    a = p.parse_args()
    c = Client(a)
    signal.signal(signal.SIGTERM, lambda *_: (c.flush(), sys.exit(0)))
    signal.signal(signal.SIGUSR1, lambda *_: setattr(c, "paused", True))
    signal.signal(signal.SIGUSR2, lambda *_: setattr(c, "paused", False))
    print(json.dumps({"k": "ready", "t": time.monotonic()}), flush=True)
    c.run()


if __name__ == "__main__":
    main()
