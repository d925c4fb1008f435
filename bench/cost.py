"""Cost inside the host process: library size, load time, RSS growth, threads created.

From the cold runs (a fresh zfhost: dlopen + ZFInit + GetZFTable, then the first claim, then
`rss`), the warm runs (threads after every claim) and sosize.py on the built library; beside it,
what a Python interpreter with boto3 (the embedded-Python way) occupies.
"""

import os
import subprocess

import sosize
from analysis import summary
from common import PY, clean_env, release
from contenders import dist_lib


def measure(runs, so=None, python_boto3_kib=None, so_dist=None):
    """Everything from the runs; `so` and `python_boto3_kib` are measured unless given (re-rendering
    stored results keeps the ones measured with them)."""
    # RSS and load time of the test build; threads of every build measured.
    cold = [r for r in runs if r["contender"] == "cold" and r.get("rss_after_kib")]
    cold_all = [r for r in runs if r["contender"] in ("cold", "cold-dist") and r.get("threads_after") is not None]
    warm = [r for r in runs if r["contender"] in ("warm", "warm-dist") and r.get("threads_after") is not None]
    out = {"so": so or sosize.analyse(release("libirisvip.so"))}
    # None: measure the `make dist` library if there is one; False (re-rendering): there was none.
    if so_dist is None and os.path.exists(dist_lib()):
        so_dist = sosize.analyse(dist_lib())
    if so_dist:
        out["so_dist"] = so_dist
    out["load_ms"] = summary(r.get("load_ms") for r in cold)
    # Inside the process (what NotifyBecomePrimary pays on its first call), per table count, from
    # the quiet phase like every claim latency.
    out["first_claim_in_process_ms"] = {
        str(n): summary(r["load_ms"] + r["call_ms"] for r in cold
                        if r["tables"] == n and r["phase"] == "quiet" and r.get("load_ms") is not None
                        and r.get("call_ms") is not None)
        for n in sorted({r["tables"] for r in cold})}
    out["rss_before_kib"] = summary(r["rss_before_kib"] for r in cold)
    out["rss_growth_load_kib"] = summary(r["rss_load_kib"] - r["rss_before_kib"] for r in cold)
    out["rss_growth_kib"] = summary(r["rss_after_kib"] - r["rss_before_kib"] for r in cold)
    created = [r["threads_after"] - r["threads_load"] for r in cold_all if r.get("threads_load") is not None]
    created += [r["threads_after"] - r["threads_before"] for r in warm]
    out["threads_created_max"] = max(created) if created else None
    out["threads_after_max"] = max([r["threads_after"] for r in cold_all + warm], default=None)
    out["calls_checked_for_threads"] = len(created)
    out["python_boto3_kib"] = python_boto3_kib or python_boto3()
    return out


def python_boto3():
    """What the embedded-Python way adds to a process: the interpreter, then boto3 with the
    session, client and resource the seed approach builds (no request made)."""
    probe = (
        "def rss():\n"
        "    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1])\n"
        "a = rss()\n"
        "import boto3\n"
        "s = boto3.Session(region_name='us-east-1')\n"
        "c, r = s.client('ec2'), s.resource('ec2')\n"
        "print(a, rss())\n"
    )
    try:
        out = subprocess.run([PY, "-c", probe], capture_output=True, text=True, timeout=120,
                             env=clean_env(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x")).stdout.split()
        return {"interpreter": int(out[0]), "with_boto3": int(out[1])}
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None
