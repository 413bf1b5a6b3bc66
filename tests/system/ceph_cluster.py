"""A single-node Ceph cluster for the RBD tests, from Debian's packages
(ceph-mon, ceph-osd, ceph-common): one monitor on a loopback port, one OSD
on memstore, no manager, no authentication.  Everything it makes (config,
monitor and OSD data, run dir, admin sockets, logs) is under its own
directory; stop() kills every daemon it started and removes that directory,
whatever state the cluster is in.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BINARIES = ("ceph-mon", "ceph-osd", "monmaptool", "ceph", "rbd")


def missing_binaries():
    """The binaries the cluster needs that are not on PATH."""
    return [b for b in BINARIES if shutil.which(b) is None]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


CONF = """[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{port}
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
run dir = {root}/run
admin socket = {root}/run/$cluster-$name.asok
log file = {root}/log/$cluster-$name.log
pid file = {root}/run/$cluster-$name.pid
mon data = {root}/mon/$cluster-$name
osd data = {root}/osd/$cluster-$name
osd journal = {root}/osd/$cluster-$name/journal
keyring = {root}/keyring
osd objectstore = memstore
memstore device bytes = {memstore}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd max object name len = 256
# A killed client's exclusive lock on an image is broken once its watch
# times out: 5 s instead of 30 (vssd killed with -9, then restarted).
osd client watch timeout = 5
osd max object namespace len = 64
mon pg warn min per osd = 0
client mount timeout = 15
rados mon op timeout = 15
rados osd op timeout = 0
"""


class CephCluster:
    """One monitor and one OSD under @root (made if missing)."""

    def __init__(self, root=None, memstore_mb=1024):
        self.root = root or tempfile.mkdtemp(prefix="vss-ceph-", dir="/tmp")
        self.own_root = root is None
        self.conf = os.path.join(self.root, "ceph.conf")
        self.port = free_port()
        self.memstore = memstore_mb << 20
        self.procs = []

    def _env(self):
        env = dict(os.environ)
        env["CEPH_CONF"] = self.conf
        return env

    def run(self, *argv, check=True, timeout=60):
        r = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                           timeout=timeout, env=self._env())
        if check and r.returncode != 0:
            raise AssertionError("%s -> %d\nstdout: %s\nstderr: %s\n%s" % (
                " ".join(str(a) for a in argv), r.returncode, r.stdout, r.stderr,
                self.logs()))
        return r

    def ceph(self, *args, **kw):
        return self.run("ceph", "--conf", self.conf, *args, **kw)

    def rbd(self, *args, **kw):
        return self.run("rbd", "--conf", self.conf, *args, **kw)

    def logs(self, tail=3000):
        out = []
        d = os.path.join(self.root, "log")
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, name), errors="replace") as f:
                out.append("== %s ==\n%s" % (name, f.read()[-tail:]))
        return "\n".join(out)

    def _spawn(self, argv):
        log = open(os.path.join(self.root, "log", os.path.basename(argv[0]) + ".out"), "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=log, env=self._env(),
                             start_new_session=True)
        log.close()
        self.procs.append(p)
        return p

    def start(self, timeout=60):
        import uuid
        fsid = str(uuid.uuid4())
        for d in ("run", "log", "mon", "osd"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(CONF.format(fsid=fsid, port=self.port, root=self.root,
                                memstore=self.memstore))
        monmap = os.path.join(self.root, "monmap")
        self.run("monmaptool", "--create", "--fsid", fsid, "--addv", "a",
                 "[v2:127.0.0.1:%d]" % self.port, monmap)
        self.run("ceph-mon", "--conf", self.conf, "--id", "a", "--mkfs",
                 "--monmap", monmap)
        self.start_mon()
        self.ceph("status", timeout=timeout)
        osd_id = self.ceph("osd", "create").stdout.strip()
        assert osd_id == "0", osd_id
        os.makedirs(os.path.join(self.root, "osd", "ceph-osd.0"), exist_ok=True)
        self.run("ceph-osd", "--conf", self.conf, "--id", "0", "--mkfs")
        self.start_osd()
        self.wait_osd_up(timeout)
        return self

    def start_mon(self):
        self.mon = self._spawn(["ceph-mon", "--conf", self.conf, "--id", "a", "-f"])

    def start_osd(self):
        self.osd = self._spawn(["ceph-osd", "--conf", self.conf, "--id", "0", "-f"])

    def wait_osd_up(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.osd.poll() is not None:
                raise AssertionError("ceph-osd exited with %s\n%s" % (
                    self.osd.returncode, self.logs()))
            r = self.ceph("osd", "stat", check=False, timeout=20)
            if r.returncode == 0 and "1 up" in r.stdout:
                return
            time.sleep(0.3)
        raise AssertionError("the OSD is not up after %ss\n%s" % (timeout, self.logs()))

    def create_pool(self, name):
        self.ceph("osd", "pool", "create", name, "8")
        self.rbd("pool", "init", name)

    def kill(self, p):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait(10)

    def stop(self):
        """Kills every daemon this cluster started and removes its files."""
        for p in reversed(self.procs):
            try:
                self.kill(p)
            except (subprocess.TimeoutExpired, OSError):
                pass
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)
