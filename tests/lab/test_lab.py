"""The failover lab, run short: real packets through network namespaces, judged from its JSON.

    .venv/bin/python -m unittest discover -s tests/lab -v      (as root; 25-40 s)

One lab run (scenarios 1, 2, 4 and 6, twice each) is checked here independently of the lab's
own verdicts, against the library calls it made (what EC2 held when) rather than against the
route sync loop's report (scenario 6, the private-ip site, has its own samples, routes and marks
under "private_ip" in the JSON, and is judged against those):
- after every claim the client reaches the claimer, and at the end of each run only the claimer
  answers;
- no reply ever comes from a member that could not hold the route when the request left,
  allowing for the data plane's lag (the sync interval, one poll, the `ip route` call);
- A's late release in scenario 4 deletes nothing and not one request fails or reaches A after it;
- in scenario 6 B's claim moves the address to B's ENI (the EC2 model took it off A's), EC2 never
  shows it on two ENIs, and no reply comes from A once the VPC delivers to B.
A second, interrupted run checks that SIGTERM leaves no namespace and no process behind, and the
first one that a crashed run's namespace is swept. Skips (with the reason) without root/netns.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(REPO, "lab", "lab.py")
PREFIX = "irisvip-lab-"
SLACK_S = 0.020  # scheduling slack on a 2-core machine running ~10 Python processes
EXIT_NO_NETNS = 3


def netns_list():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def why_no_netns():
    """The reason the lab cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux-only"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if os.geteuid() != 0:
        return f"the lab needs root for network namespaces (running as uid {os.geteuid()})"
    return None


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def lab_processes(lab_pid):
    """Processes a lab started (each carries IRISVIP_LAB_PID=<the lab's pid> in its environment)."""
    marker = f"IRISVIP_LAB_PID={lab_pid}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    with open(f"/proc/{pid}/cmdline", "rb") as g:
                        found.append((int(pid), g.read().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:
            continue
    return found


def holder_spans(marks, initial=None):
    """[(member or None, start, end)]: who may have held the route (or the address) in EC2, from
    the calls alone. A claim or release changes EC2 somewhere inside its call, so a holder's span
    starts when the call that made it was sent and ends when the call that replaced it returned."""
    spans, current, since = [], initial, 0.0
    for m in sorted((m for m in marks if m["what"] in ("vip_claim", "vip_release") and m.get("ok")),
                    key=lambda m: m["t"]):
        if m["what"] == "vip_claim":
            new = m["member"]
        elif {"deleted", "unassigned"} & set(m.get("actions") or []):
            new = None
        else:
            continue  # a release that deleted nothing changes nothing
        if new == current:
            continue
        spans.append((current, since, m["t_done"]))
        current, since = new, m["t"]
    spans.append((current, since, float("inf")))
    return spans


class LabRun(unittest.TestCase):
    """Scenarios 1, 2, 4, 6, twice each."""

    @classmethod
    def setUpClass(cls):
        reason = why_no_netns()
        if reason:
            raise unittest.SkipTest(reason)
        cls.tmp = tempfile.mkdtemp(prefix="irisvip-labtest-")
        cls.json_path = os.path.join(cls.tmp, "lab.json")
        # A namespace named like a crashed lab's: the run must sweep it.
        cls.stale = f"{PREFIX}{dead_pid()}-vpc"
        subprocess.run(["ip", "netns", "add", cls.stale], check=True)
        t0 = time.monotonic()
        p = subprocess.Popen([sys.executable, LAB, "--scenarios", "1,2,4,6", "--repeat", "2", "--quiet",
                              "--json", cls.json_path, "--plot", os.path.join(cls.tmp, "lab.png")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = p.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            p.terminate()  # the lab tears itself down on SIGTERM
            out, err = p.communicate(timeout=30)
        cls.proc = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        cls.lab_pid = p.pid
        cls.seconds = time.monotonic() - t0
        if cls.proc.returncode == EXIT_NO_NETNS:
            subprocess.run(["ip", "netns", "del", cls.stale], capture_output=True)
            raise unittest.SkipTest(cls.proc.stderr.strip())
        sys.stderr.write(f"\n[lab ran {cls.seconds:.1f} s]\n{cls.proc.stdout}")
        cls.doc = None
        if os.path.exists(cls.json_path):
            with open(cls.json_path) as f:
                cls.doc = json.load(f)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["ip", "netns", "del", cls.stale], capture_output=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.assertIsNotNone(self.doc, f"no JSON; lab exit {self.proc.returncode}\n{self.proc.stderr[-3000:]}")

    def runs(self, scenario=None):
        return [r for r in self.doc["runs"] if scenario is None or r["scenario"] == scenario]

    def site(self, run=None, private_ip=False):
        """The recorded data of a run's site: the route site's at the top level, the private-ip
        site's under "private_ip"."""
        if (run or {}).get("site") == "private-ip" or private_ip:
            return self.doc["private_ip"]
        return self.doc

    def test_lab_passed_its_own_checks(self):
        verdicts = "\n".join(line for line in self.proc.stdout.splitlines() if "FAIL" in line)
        self.assertEqual(self.proc.returncode, 0, verdicts + "\n" + self.proc.stderr[-3000:])
        self.assertEqual(len(self.runs()), 8)
        self.assertEqual(self.doc["sync_errors"], [])
        self.assertEqual(self.doc["private_ip"]["sync_errors"], [])

    def test_client_reaches_the_new_primary_after_every_failover(self):
        for run in self.runs():
            samples, marks = self.site(run)["samples"], self.site(run)["marks"]
            with self.subTest(scenario=run["scenario"], rep=run["rep"]):
                new = run["new"]
                claim = [m for m in marks if m["what"] == "vip_claim" and m["member"] == new and not m.get("setup")
                         and run["t_start"] <= m["t"] <= run["t_end"]]
                self.assertEqual(len(claim), 1)
                after = [s for s in samples if s["t0"] >= claim[0]["t"] and s["t1"] <= run["t_end"]]
                for kind in ("c", "s"):
                    self.assertTrue(any(s["ok"] and s["m"] == new and s["k"] == kind for s in after),
                                    f"no {kind} reply from {new} after its claim")
                # The run's last 100 ms: every attempt answered, by the new primary only.
                tail = [s for s in samples if run["t_end"] - 0.1 <= s["t0"] and s["t1"] <= run["t_end"]]
                self.assertTrue(tail)
                self.assertEqual({(s["ok"], s.get("m")) for s in tail}, {(True, new)})

    def test_no_reply_from_a_member_without_the_route(self):
        for private_ip in (False, True):
            site = self.site(private_ip=private_ip)
            with self.subTest(site="private-ip" if private_ip else "route"):
                # The private-ip world starts with A's ENI holding the address (world.py --secondary-ip).
                spans = holder_spans(site["marks"], initial="A" if private_ip else None)
                st = site["sync"] or {}
                # The router follows EC2 within one pause, one poll, the `ip route` call.
                lag = (self.doc["params"]["sync_ms"] + (st.get("poll_ms_max") or 0)) / 1000.0 + SLACK_S
                replies = [s for s in site["samples"] if s["ok"]]
                self.assertGreater(len(replies), 500 if not private_ip else 150)
                stray = [s for s in replies if not any(m == s["m"] and lo <= s["t0"] + 0.002 and hi + lag >= s["t0"]
                                                       for m, lo, hi in spans)]
                self.assertEqual(stray, [], f"{len(stray)} replies from a member that did not hold the route")

    def test_private_ip_moves_to_b_and_a_gets_nothing_after(self):
        ip = self.doc["private_ip"]
        b_eni, a_eni = ip["world"]["b"]["eni"], ip["world"]["a"]["eni"]
        self.assertEqual(ip["world"]["a"]["subnet"], ip["world"]["b"]["subnet"], "the members are not in one subnet")
        # The data plane read EC2 through the model, which never showed the address on two ENIs.
        self.assertEqual([r for r in ip["routes"] if r["state"] == "several"], [])
        self.assertGreaterEqual(((ip["ec2_model"]["state"] or {}).get("addresses") or {}).get("moved", 0), 2)
        runs = self.runs(6)
        self.assertEqual(len(runs), 2)
        for run in runs:
            with self.subTest(rep=run["rep"]):
                claim = [m for m in ip["marks"] if m["what"] == "vip_claim" and m["member"] == "B"
                         and not m.get("setup") and run["t_start"] <= m["t"] <= run["t_end"]]
                self.assertEqual(len(claim), 1)
                self.assertTrue(claim[0]["ok"])
                self.assertEqual(claim[0]["address"]["action"], "assigned")
                self.assertEqual(claim[0]["address"]["target"], b_eni)
                # Where the VPC delivered the address during the run: A's ENI, then B's (and at
                # most a moment on none, between the model's unassign and assign).
                seen = [r["target"] for r in ip["routes"] if run["t_start"] <= r["t_applied"] <= run["t_end"]]
                self.assertEqual(seen[-1], b_eni)
                self.assertTrue(set(seen) <= {a_eni, b_eni, None}, seen)
                switch = [r for r in ip["routes"] if r["target"] == b_eni and claim[0]["t"] <= r["t_applied"]][0]
                late = [s for s in ip["samples"] if s["ok"] and s["m"] == "A" and s["t0"] >= switch["t_seen"]
                        and s["t1"] <= run["t_end"]]
                self.assertEqual(late, [], "A answered after the address moved")

    def test_late_release_never_interrupts_b(self):
        runs = self.runs(4)
        self.assertEqual(len(runs), 2)
        for run in runs:
            with self.subTest(rep=run["rep"]):
                rel = [m for m in self.doc["marks"] if m["what"] == "vip_release" and m["member"] == "A"
                       and not m.get("setup") and run["t_start"] <= m["t"] <= run["t_end"]]
                self.assertEqual(len(rel), 1)
                self.assertTrue(rel[0]["ok"])
                self.assertNotIn("deleted", rel[0]["actions"])
                after = [s for s in self.doc["samples"] if rel[0]["t"] <= s["t0"] and s["t1"] <= run["t_end"]]
                self.assertGreater(len(after), 50)
                self.assertEqual([s for s in after if not s["ok"] or s["m"] != "B"], [])
                self.assertFalse([r for r in self.doc["routes"] if r["t_applied"] >= rel[0]["t"]
                                  and r["t_applied"] <= run["t_end"]], "the route moved after A's release")

    def test_nothing_left_behind_and_stale_swept(self):
        self.assertNotIn(self.stale, netns_list(), "the crashed run's namespace was not swept")
        self.assertRegex(self.proc.stdout, r"removed \d+ namespace")
        self.assertEqual([n for n in netns_list() if n.startswith(f"{PREFIX}{self.lab_pid}-")], [])
        self.assertEqual(lab_processes(self.lab_pid), [])


class LabInterrupted(unittest.TestCase):
    """SIGTERM in the middle of a scenario: namespaces and processes are gone afterwards."""

    def test_sigterm_cleans_up(self):
        reason = why_no_netns()
        if reason:
            self.skipTest(reason)
        p = subprocess.Popen([sys.executable, LAB, "--scenarios", "2", "--repeat", "50", "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            mine = f"{PREFIX}{p.pid}-"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # started: the first scenario run has printed
                line = p.stdout.readline()
                if not line or line.startswith("scenario 2"):
                    break
            if p.poll() == EXIT_NO_NETNS:
                self.skipTest(p.stderr.read().strip())
            self.assertTrue(any(n.startswith(mine) for n in netns_list()), "the lab's namespaces are not there")
            p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(rc, 128 + signal.SIGTERM)
        self.assertEqual([n for n in netns_list() if n.startswith(mine)], [])
        self.assertEqual(lab_processes(p.pid), [])


if __name__ == "__main__":
    unittest.main()
