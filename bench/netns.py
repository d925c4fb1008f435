"""The bench's network namespace: loopback, 169.254.169.254 and an eth0 with member A's MAC.

Everything the benchmark starts runs inside it, so moto, the IMDS stand-ins and every contender
share one network that nothing outside can reach and that reaches nothing outside. Named
`irisvip-bench-<pid>`; `destroy` ends whatever still runs in it, then deletes it, and a later run
removes namespaces left by runs whose process is gone.
"""

import os
import signal
import subprocess
import time

from common import IMDS_ADDR, MAC, log

PREFIX = "irisvip-bench-"


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def create(name):
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "addr", "add", f"{IMDS_ADDR}/32", "dev", "lo")
        # The resource agent reads this instance's MAC from /sys/class/net/<interface>/address.
        _ip("-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer")
        _ip("-n", name, "link", "set", "eth0", "address", MAC["A"])
        _ip("-n", name, "link", "set", "eth0", "up")
        _ip("-n", name, "link", "set", "eth0peer", "up")
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                       check=False, capture_output=True)
    except BaseException:
        destroy(name)
        raise


def pids(name):
    out = _ip("netns", "pids", name, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def destroy(name):
    for sig, pause in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 1.0)):
        victims = pids(name)
        if not victims:
            break
        for pid in victims:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + pause
        while pids(name) and time.monotonic() < deadline:
            time.sleep(0.05)
    _ip("netns", "del", name, check=False)


def remove_stale():
    """Deletes irisvip-bench-<pid> namespaces whose creating process no longer exists."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX):]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            log(f"removing stale namespace {name}")
            destroy(name)
