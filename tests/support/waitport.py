"""wait_port: the one "is it listening yet?" loop of the Python helpers (demo, bench, lab)."""

import socket
import time


def wait_port(host, port, limit=60.0, pause=0.05):
    """True once something accepts TCP connections on host:port, False after `limit` seconds."""
    t0 = time.monotonic()
    while True:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return True
        except OSError:
            if time.monotonic() - t0 > limit:
                return False
            time.sleep(pause)
