"""System tests: the real vssd and vss, as root, on real loop devices,
FUSE and filesystems.  Every test gets its own state and run directories in
a private temporary directory, and its finalizer removes everything the test
made there (daemons, mounts, loop devices, the FUSE tree, helper processes)
even when the test fails.  Nothing outside that directory is touched.
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

BUILD = os.environ.get("VSS_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
VSSD = os.path.abspath(os.path.join(BUILD, "src", "vssd", "vssd"))
VSS = os.path.abspath(os.path.join(BUILD, "src", "vss", "vss"))


def pytest_collection_modifyitems(config, items):
    why = None
    if os.geteuid() != 0:
        why = "system tests need root (loop devices, FUSE, mounts)"
    elif not os.path.exists("/dev/fuse"):
        why = "system tests need /dev/fuse"
    elif not (os.path.exists(VSSD) and os.path.exists(VSS)):
        why = "build vssd and vss first (VSS_BUILD_DIR=%s)" % BUILD
    if why:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=why))


# A run in which every test was skipped exits 77, so that meson (one test
# per file) reports SKIP, not OK (pytest itself exits 0).
_outcomes = {"passed": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    if report.passed and report.when == "call":
        _outcomes["passed"] += 1
    elif report.skipped:
        _outcomes["skipped"] += 1


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0 and _outcomes["skipped"] and not _outcomes["passed"]:
        session.exitstatus = 77


# ---- the control protocol, raw (doc/protocol.md), for clients that misbehave ----
FRAME_MORE = 0x80000000     # another frame of the same message follows


def frame(obj_or_bytes):
    """One frame holding @obj_or_bytes (JSON-encoded unless bytes)."""
    b = obj_or_bytes if isinstance(obj_or_bytes, bytes) else json.dumps(obj_or_bytes).encode()
    return struct.pack(">I", len(b)) + b


def recv_frame(s):
    """One message (of one or more frames), parsed; None at end of stream."""
    payload = b""
    while True:
        hdr = s.recv(4, socket.MSG_WAITALL)
        if len(hdr) < 4:
            return None
        word = struct.unpack(">I", hdr)[0]
        n = word & ~FRAME_MORE
        body = s.recv(n, socket.MSG_WAITALL) if n else b""
        if len(body) < n:
            return None
        payload += body
        if not word & FRAME_MORE:
            return json.loads(payload)


def connect(d, timeout=10):
    """A raw connection to @d's control socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(os.path.join(d.run, "vssd.sock"))
    return s


def mkfs_btrfs(target, timeout=30):
    """mkfs.btrfs -q -f @target.  mkfs.btrfs looks at every mount to check
    that @target is not mounted, and gives up when one of them is a FUSE
    mount whose server died ("Transport endpoint is not connected"): one
    that another test is cleaning up right now.  That is tried again."""
    deadline = time.time() + timeout
    while True:
        r = subprocess.run(["mkfs.btrfs", "-q", "-f", target], capture_output=True, text=True)
        if r.returncode == 0:
            return
        if "cannot check mount status" not in r.stderr or time.time() > deadline:
            raise AssertionError("mkfs.btrfs %s: %s" % (target, r.stderr))
        time.sleep(0.5)


def ext4_groups(dev):
    """dumpe2fs of @dev: (block size, [(group's flags line, first, last
    block of its inode table)])."""
    out = subprocess.run(["dumpe2fs", dev], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    bsize = next(int(l.split(":")[1]) for l in out if l.startswith("Block size:"))
    groups = []
    for i, l in enumerate(out):
        if l.startswith("Group ") and l.split()[1][:-1].isdigit():
            table = next(x for x in out[i:] if "Inode table at" in x)
            first, last = table.split("Inode table at")[1].split()[0].split("-")
            groups.append((l, int(first), int(last)))
    return bsize, groups


def sha256_file(path, size=None, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        left = size
        while left is None or left > 0:
            b = f.read(chunk if left is None else min(chunk, left))
            if not b:
                break
            h.update(b)
            if left is not None:
                left -= len(b)
    return h.hexdigest()


def mounts_under(root):
    """Mount points under @root, innermost (latest) first."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == root or mnt.startswith(root + "/"):
                out.append(mnt)
    return list(reversed(out))


def loops_under(root):
    out = []
    for name in os.listdir("/sys/block"):
        if not name.startswith("loop"):
            continue
        try:
            with open("/sys/block/%s/loop/backing_file" % name) as f:
                backing = f.read().strip()
        except OSError:
            continue
        if backing.startswith(root + "/"):
            out.append("/dev/" + name)
    return out


class Daemon:
    """One vssd with its own state and run directories under @root."""

    def __init__(self, root, env=None, args=None):
        self.root = root
        self.extra_args = list(args or [])
        self.state = os.path.join(root, "state")
        self.run = os.path.join(root, "run")
        self.log_path = os.path.join(root, "vssd.log")
        self.extra_env = env or {}
        self.proc = None
        self.helpers = []   # other processes the test started, to end

    # ---- the daemon ----
    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None
        env = dict(os.environ)
        env.pop("VSS_RUN_DIR", None)
        env.pop("VSS_STATE_DIR", None)
        env.update(self.extra_env)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [VSSD, "--state-dir", self.state, "--run-dir", self.run] + self.extra_args,
            stdout=log, stderr=log, env=env)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("vssd exited with %s:\n%s"
                                     % (self.proc.returncode, self.log()))
            if self.vss("status", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise AssertionError("vssd not ready after %ss:\n%s" % (timeout, self.log()))

    def stop(self, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("vssd did not stop on SIGTERM:\n" + self.log())

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def restart(self):
        assert self.stop() == 0, "vssd did not stop cleanly:\n" + self.log()
        self.start()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # ---- the command line ----
    def vss(self, *args, check=True, timeout=120, user=None, groups=None, input=None):
        """Runs vss; as uid @user (gid the same) with the supplementary
        @groups (gids; none if not given) if @user is not None."""
        cmd = [VSS, "--run-dir", self.run] + [str(a) for a in args]
        if user is not None:
            cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user] + (
                ["--groups=" + ",".join(str(g) for g in groups)] if groups
                else ["--clear-groups"]) + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           input=input)
        if check and r.returncode != 0:
            raise AssertionError("%s -> %d\nstdout: %s\nstderr: %s\nlog:\n%s" % (
                " ".join(cmd), r.returncode, r.stdout, r.stderr, self.log()[-4000:]))
        return r

    def json(self, *args):
        return json.loads(self.vss(*(list(args) + ["--json"])).stdout)

    # ---- conveniences ----
    def create_volume(self, name, size="64M", *extra):
        self.vss("volume", "create", name, "--size", size, *extra)
        return self.volume(name)

    def volume(self, name):
        for v in self.json("volume", "list")["volumes"]:
            if v["name"] == name:
                return v
        raise KeyError(name)

    def device(self, name):
        return os.path.join(self.run, "dev", "volumes", name)

    def shadow(self, *targets, persistent=False):
        """Takes one set; returns its JSON (set, frozen_ms, shadows)."""
        args = ["create", "shadow"]
        for t in targets:
            args += ["--for", t]
        if persistent:
            args.append("--persistent")
        return self.json(*args)

    def shadows(self, *args):
        return self.json("list", "shadows", *args)["shadows"]

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.helpers.append(p)
        return p

    # ---- cleanup: everything under root, whatever state it is in ----
    def cleanup(self):
        for p in self.helpers:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            self.stop()
        except AssertionError:
            pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for _ in range(3):
            for m in mounts_under(self.root):
                subprocess.run(["umount", "-l", m], capture_output=True)
            for dev in loops_under(self.root):
                subprocess.run(["losetup", "-d", dev], capture_output=True)
            if not mounts_under(self.root) and not loops_under(self.root):
                break
            time.sleep(0.5)


@pytest.fixture
def workdir():
    root = tempfile.mkdtemp(prefix="vss-test-", dir="/tmp")
    yield root
    # Mounts first (a test may have left some), then the files.
    for m in mounts_under(root):
        subprocess.run(["umount", "-l", m], capture_output=True)
    for dev in loops_under(root):
        subprocess.run(["losetup", "-d", dev], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def daemon_factory(workdir):
    made = []

    def make(name="d", env=None, start=True, args=None):
        d = Daemon(os.path.join(workdir, name), env, args)
        os.makedirs(d.root, exist_ok=True)
        made.append(d)
        if start:
            d.start()
        return d

    yield make
    for d in reversed(made):
        d.cleanup()


@pytest.fixture
def vssd(daemon_factory):
    return daemon_factory()
