"""Child processes of one lab run: start them inside a namespace, read their output, stop them.

Every child is started from the lab's main thread through `setpriv --pdeathsig KILL`, so even a
lab killed with SIGKILL takes its children with it; `ip netns exec` execs the command in place,
so the pid we hold is the program's own and stopping it never needs a broad kill.
"""

import os
import queue
import shutil
import signal
import subprocess
import threading
import time


class Child:
    """One running program. Its stdout lines go to on_line(line, t) from a reader thread, or,
    without on_line, into a queue that next_line() reads with a deadline."""

    def __init__(self, name, popen, on_line=None):
        self.name = name
        self.p = popen
        self.lines = queue.Queue()
        self.on_line = on_line
        self.reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            t = time.monotonic()
            line = line.rstrip("\n")
            if self.on_line is not None:
                self.on_line(line, t)
            else:
                self.lines.put((line, t))
        self.lines.put((None, time.monotonic()))  # EOF

    def next_line(self, timeout):
        """(line, monotonic time it was read); raises TimeoutError; line None at EOF."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.name}: no output within {timeout:.1f} s") from None

    def wait_for(self, prefix, timeout):
        """Skip lines until one starts with prefix; returns it. EOF or the deadline raise."""
        deadline = time.monotonic() + timeout
        while True:
            line, _ = self.next_line(max(0.0, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError(f"{self.name} exited (rc {self.p.wait()}) before printing {prefix!r}")
            if line.startswith(prefix):
                return line

    def send(self, text):
        self.p.stdin.write(text)
        self.p.stdin.flush()

    @property
    def alive(self):
        return self.p.poll() is None


class Procs:
    """The registry: everything started here is stopped by stop_all(), whatever happened."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.children = []
        self.pdeathsig = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []

    def start(self, name, argv, ns=None, env=None, on_line=None, stdin=False):
        cmd = list(self.pdeathsig)
        if ns:
            cmd += ["ip", "netns", "exec", ns]
        cmd += argv
        # Every child carries the lab's pid in its environment: a test (or a person) can then
        # find whatever a lab left running without guessing from command lines.
        env = dict(os.environ if env is None else env, IRISVIP_LAB_PID=str(os.getpid()))
        err = open(os.path.join(self.log_dir, f"{name}.stderr"), "ab")
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=err, env=env, text=True, bufsize=1)
        err.close()
        child = Child(name, p, on_line)
        self.children.append(child)
        return child

    def stop(self, child, sig=signal.SIGTERM, timeout=3.0):
        """Stop one child by its pid: sig, then SIGKILL after timeout. A child that reads commands
        on stdin (zfhost) is first sent EOF, which ends it: like the IRIS process it stands for, it
        does not end on SIGTERM (the library takes that as a stop request for the call under way)."""
        if child.p.poll() is None and sig == signal.SIGTERM and child.p.stdin:
            self._eof(child)
            try:
                child.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        if child.p.poll() is None:
            try:
                child.p.send_signal(sig)
                child.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.p.kill()
                child.p.wait()
            except ProcessLookupError:
                pass
        self._eof(child)
        child.reader.join(timeout=1.0)

    @staticmethod
    def _eof(child):
        if child.p.stdin:
            try:
                child.p.stdin.close()
            except OSError:
                pass

    def stop_all(self):
        # Signal everyone first, then wait: a run with many children stops in one timeout.
        for c in reversed(self.children):
            self._eof(c)
            if c.p.poll() is None and not c.p.stdin:
                try:
                    c.p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for c in reversed(self.children):
            self.stop(c)
        self.children.clear()
