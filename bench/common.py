"""Shared bits of the benchmark: paths, the VIP, child processes and a timed spawn."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SUPPORT = os.path.join(REPO, "tests", "support")
sys.path.insert(0, SUPPORT)
import waitport  # noqa: E402  (tests/support/waitport.py)
PY = sys.executable
VIP = "192.168.240.10"
VIP_CIDR = VIP + "/32"
REGION = "us-east-1"
IMDS_ADDR = "169.254.169.254"  # served inside the bench namespace by the IMDS stand-in of member A
# The MAC of eth0 in the bench namespace (member A's, netns.py sets it) and member B's.
MAC = {"A": "02:42:ac:1e:0a:0a", "B": "02:42:ac:1e:0b:0b"}


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")


def release(*parts):
    return os.path.join(target_dir(), "release", *parts)


def now():
    """CLOCK_MONOTONIC in seconds: the same clock in every process of the machine."""
    return time.monotonic()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host, port, what, limit=60.0):
    if not waitport.wait_port(host, port, limit, pause=0.02):
        raise RuntimeError(f"{what} did not listen on {host}:{port}")


def clean_env(**extra):
    """The environment a contender gets: no AWS_*, no proxies from the caller, then `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and "proxy" not in k.lower()}
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


class Procs:
    """Long-running children (moto, IMDS stand-ins, warm hosts, poller); stopped in reverse order."""

    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop(self, p=None):
        victims = [p] if p is not None else list(reversed(self.procs))
        for q in victims:
            if q.poll() is None:
                try:
                    q.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for q in victims:
            try:
                q.wait(timeout=5)
            except subprocess.TimeoutExpired:
                q.kill()
                q.wait()
            for f in (q.stdin, q.stdout, q.stderr):
                if f:
                    try:
                        f.close()
                    except OSError:
                        pass
            if q in self.procs:
                self.procs.remove(q)


class Spawned:
    """What one timed run of a fresh process gave."""

    def __init__(self, t0, t1, rc, stdout, stderr):
        self.t0, self.t1, self.rc = t0, t1, rc
        self.stdout, self.stderr = stdout, stderr

    @property
    def ms(self):
        return (self.t1 - self.t0) * 1000.0


def spawn_timed(argv, env, timeout=600.0):
    """Runs argv as a fresh process; t0 just before posix_spawn, t1 right after it is reaped.

    Output goes to temporary files: no pipe to drain while timing.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, open(os.devnull, "rb") as null:
        actions = [(os.POSIX_SPAWN_DUP2, null.fileno(), 0),
                   (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                   (os.POSIX_SPAWN_DUP2, err.fileno(), 2)]
        t0 = now()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        killer = threading.Timer(timeout, _kill, (pid,))
        killer.daemon = True
        killer.start()
        _, status = os.waitpid(pid, 0)
        t1 = now()
        killer.cancel()
        rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Spawned(t0, t1, rc, out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def json_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def log(*a):
    print(*a, file=sys.stderr, flush=True)
