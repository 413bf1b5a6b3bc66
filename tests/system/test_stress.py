"""Stress: for a few minutes, everything a hostile or unlucky set of local
users can do to vssd at once, while a pair writer writes to two volumes.

Running together: a client taking sets of the two raw volumes (some
persistent) and deleting old ones; a client taking shadows of a mounted
ext4 volume; writers registering and being killed at random moments (some
hanging at an event); requesters killed at random points of a backup
(vss exec, and raw-protocol sessions dropped mid-way); an unprivileged user
listing, holding idle connections and sending frames a byte at a time.

At the end: nothing is frozen, no set is left in progress and the backup
slot is free, every shadow still listed is exact (checked against the pair
writer's own rule, below, not against vss), and vssd's descriptors and
memory are back near where they started.

The pair writer's rule is the independent reference.  Step i (1, 2, ...)
writes a 4 KiB record holding i, eight bytes repeated, at block i mod N of
volume A, then the same at the same block of volume B; each write returns
before the next starts (the devices are direct I/O).  So the content of a
volume at any instant is the state after some step p: block b holds the
largest i <= p with i = b (mod N), or zeros.  A shadow shows p = the largest
value in it and must match that state block for block; a set must show A at
the same step as B or one ahead (A is written first).

VSS_STRESS_SECONDS sets how long the load runs (default 120).
"""
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from conftest import frame, recv_frame, BUILD, VSS

TEST_WRITER = os.path.abspath(os.path.join(BUILD, "tests", "system", "vss-test-writer"))
DURATION = float(os.environ.get("VSS_STRESS_SECONDS", "120"))
NOBODY = 65534
BLOCKS = 1024            # records of 4 KiB: 4 MiB of each raw volume take part
REC = 4096

PAIR_WRITER = r"""
import os, struct, sys
n = int(sys.argv[3])
a = os.open(sys.argv[1], os.O_RDWR); b = os.open(sys.argv[2], os.O_RDWR)
i = 0
while True:
    i += 1
    rec = struct.pack("<Q", i) * 512
    os.pwrite(a, rec, (i % n) * 4096)
    os.pwrite(b, rec, (i % n) * 4096)
"""

# An unprivileged user: connections held idle, a frame one byte at a time,
# a request whose reply it never reads; listings in between.
HOSTILE = r"""
import json, os, socket, struct, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
end = time.time() + seconds
idle, slow = [], None
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s
req = json.dumps({"version": 1, "id": 1, "op": "shadow.list"}).encode()
frame = struct.pack(">I", len(req)) + req
while time.time() < end:
    try:
        while len(idle) < 40:
            idle.append(conn())
        if slow is None:
            slow, sent = conn(), 0
        slow.send(frame[sent:sent + 1])
        sent += 1
        if sent == len(frame):
            slow = None          # complete: its reply is never read
        s = conn()
        s.sendall(frame)         # and one whose reply is never read either
        idle.append(s)
    except OSError:
        idle = [s for s in idle if s.fileno() >= 0][-20:]
        slow = None
    if len(idle) > 60:
        for s in idle[:20]:
            s.close()
        idle = idle[20:]
    time.sleep(0.5)
"""


def step_of(image):
    """The step p whose state @image (BLOCKS records) is, or an error line."""
    vals = []
    for b in range(BLOCKS):
        rec = image[b * REC:(b + 1) * REC]
        v = struct.unpack_from("<Q", rec)[0]
        if rec != struct.pack("<Q", v) * (REC // 8):
            runs = []
            for off in range(0, REC, 8):
                x = struct.unpack_from("<Q", rec, off)[0]
                if not runs or runs[-1][1] != x:
                    runs.append((off, x))
            return None, "block %d is torn: (offset, step) %s" % (b, runs[:8])
        vals.append(v)
    p = max(vals)
    for b, v in enumerate(vals):
        want = p - ((p - b) % BLOCKS)
        if want < 1:
            want = 0
        if v != want:
            return None, "block %d holds step %d, the state after step %d holds %d" % (
                b, v, p, want)
    return p, None


def read_image(path):
    with open(path, "rb", buffering=0) as f:
        image = f.read(BLOCKS * REC)
    assert len(image) == BLOCKS * REC, "short read of %s: %d bytes" % (path, len(image))
    return image


def check_pair(vssd, shadows):
    """The shadows of one set of A and B: each exact, one instant."""
    by = {s["volume"]: s for s in shadows}
    steps = {}
    for name in ("A", "B"):
        dev = os.path.join(vssd.run, "dev", "shadows", by[name]["id"])
        p, why = step_of(read_image(dev))
        assert why is None, "shadow %s of %s: %s" % (by[name]["id"], name, why)
        steps[name] = p
    assert steps["B"] <= steps["A"] <= steps["B"] + 1, steps
    return steps["A"]


def vssd_fd_names(vssd):
    out = []
    for fd in os.listdir("/proc/%d/fd" % vssd.proc.pid):
        try:
            out.append(os.readlink("/proc/%d/fd/%s" % (vssd.proc.pid, fd)))
        except OSError:
            pass
    return sorted(out)


def vssd_rss_kb(vssd):
    with open("/proc/%d/status" % vssd.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Load:
    """The clients, each a thread; failures of the checks they make are kept."""

    def __init__(self, vssd, mnt, seconds):
        self.vssd, self.mnt = vssd, mnt
        self.end = time.time() + seconds
        self.errors = []
        self.counts = {}
        self.lock = threading.Lock()
        self.threads = []
        self.own_sets = {}     # client thread -> sets it took (it deletes only those)
        self.doing = {}        # client -> what it is doing now, for a stuck one

    def now(self, what):
        self.doing[threading.current_thread().name] = (what, time.time())

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def run(self, fn, seed):
        def body():
            rng = random.Random(seed)
            try:
                while time.time() < self.end:
                    fn(rng)
            except Exception as e:          # kept, reported at the end
                with self.lock:
                    self.errors.append("%s: %r" % (fn.__name__, e))
        t = threading.Thread(target=body, daemon=True, name="%s-%d" % (fn.__name__, seed))
        t.start()
        self.threads.append(t)

    def join(self):
        deadline = time.time() + 150
        for t in self.threads:
            t.join(max(0, deadline - time.time()))
        stuck = [t.name for t in self.threads if t.is_alive()]
        if stuck:
            stacks = []
            for task in os.listdir("/proc/%d/task" % self.vssd.proc.pid):
                try:
                    with open("/proc/%d/task/%s/stack" % (self.vssd.proc.pid, task)) as f:
                        stacks.append("%s: %s" % (task, f.read().replace("\n", " | ")))
                except OSError:
                    pass
            raise AssertionError("clients stuck: %s\n%s\nvssd's threads:\n%s\nlog:\n%s" % (
                ", ".join("%s (%s, for %.0f s)" % (n, self.doing.get(n, ("?", 0))[0],
                                                    time.time() - self.doing.get(n, ("", 0))[1])
                          for n in stuck),
                "", "\n".join(stacks), self.vssd.log()[-6000:]))

    # ---- the clients ----
    def pair_sets(self, rng):
        v = self.vssd
        args = ["create", "shadow", "--for", "A", "--for", "B", "--json"]
        if rng.random() < 0.3:
            args.append("--persistent")
        self.now(" ".join(args))
        r = v.vss(*args, check=False, timeout=120)
        if r.returncode != 0:
            self.count("pair set refused")
            return
        s = json.loads(r.stdout)
        self.now("reading set %s" % s["set"])
        check_pair(v, s["shadows"])
        self.now("deleting")
        self.count("pair set")
        # Deleting only its own sets: another client may be reading its own.
        mine = self.own_sets.setdefault(threading.get_ident(), [])
        mine.append(s["set"])
        if len(mine) > 4 or rng.random() < 0.3:
            v.vss("delete", "shadows", "--set", mine.pop(rng.randrange(len(mine))),
                  check=False)
            self.count("pair set deleted")

    def fs_sets(self, rng):
        v = self.vssd
        self.now("create shadow --for the ext4 volume")
        r = v.vss("create", "shadow", "--for", self.mnt, "--json", check=False, timeout=120)
        if r.returncode != 0:
            self.count("fs set failed")     # a writer died or hung in it
            return
        sid = json.loads(r.stdout)["shadows"][0]["id"]
        dev = os.path.join(v.run, "dev", "shadows", sid)
        self.now("e2fsck of %s" % sid)
        fsck = subprocess.run(["e2fsck", "-fn", dev], capture_output=True, text=True,
                              timeout=120)
        assert fsck.returncode == 0, "shadow %s of the ext4 volume: %s" % (sid, fsck.stdout)
        v.vss("delete", "shadows", "--shadow", sid, check=False)
        self.count("fs set")

    def writer_churn(self, rng):
        v = self.vssd
        name = "w%d" % rng.randrange(1 << 30)
        extra = ["--class", rng.choice(["front", "back", "system"]), "--timeout", "3000"]
        if rng.random() < 0.2:
            extra += ["--hang-at", rng.choice(["prepare_snapshot", "freeze", "thaw"])]
        p = subprocess.Popen([TEST_WRITER, "--run-dir", v.run, "--name", name, "--log",
                              os.path.join(v.root, "writers.log")] + extra,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 3))
        p.kill()
        p.wait()
        self.count("writer killed")

    def requester_killed(self, rng):
        v = self.vssd
        if rng.random() < 0.5:
            p = subprocess.Popen([VSS, "--run-dir", v.run, "exec", "--for", self.mnt, "--",
                                  "sleep", "2"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0, 2.5))
            p.kill()
            p.wait()
            self.count("vss exec killed")
            return
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        try:
            s.connect(os.path.join(v.run, "vssd.sock"))
        except OSError:
            self.count("session refused")
            return
        steps = [("backup.begin", {"wait_ms": 5000}), ("backup.prepare", {}),
                 ("shadow.create", {"targets": [rng.choice(["A", self.mnt])]}),
                 ("backup.status", {})]
        stop = rng.randrange(len(steps) + 1)
        try:
            for n, (op, args) in enumerate(steps[:stop]):
                s.sendall(frame({"version": 1, "id": n, "op": op, "args": args}))
                if rng.random() < 0.2:
                    break                      # gone before the reply
                if recv_frame(s) is None:
                    break
        except OSError:
            self.count("session refused")    # vssd at its connection limit
        s.close()
        self.count("session dropped at step %d" % stop)

    def unprivileged_lister(self, rng):
        r = self.vssd.vss("list", "shadows", "--json", user=NOBODY, check=False, timeout=60)
        self.count("list as nobody" if r.returncode == 0 else "list as nobody refused")
        time.sleep(rng.uniform(0, 0.5))


def test_stress(vssd, workdir):
    for p in (workdir, vssd.root):
        os.chmod(p, 0o755)        # the socket must be reachable by nobody
    vssd.create_volume("A", "8M")
    vssd.create_volume("B", "8M")
    mnt = os.path.join(vssd.root, "mnt")
    vssd.create_volume("C", "96M")
    vssd.vss("volume", "mount", "C", mnt, "--mkfs", "ext4")
    pair = vssd.spawn([sys.executable, "-c", PAIR_WRITER, vssd.device("A"), vssd.device("B"),
                       str(BLOCKS)])
    files = vssd.spawn(["sh", "-c", "i=0; while :; do i=$((i+1)); "
                        "dd if=/dev/urandom of=%s/f$((i%%50)) bs=64k count=4 "
                        "conv=fsync status=none; done" % mnt])
    time.sleep(1)
    # What vssd holds once everything is set up, before the load.
    vssd.vss("list", "shadows")
    names0, rss0 = vssd_fd_names(vssd), vssd_rss_kb(vssd)

    hostile = vssd.spawn(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                          "--clear-groups", sys.executable, "-c", HOSTILE,
                          os.path.join(vssd.run, "vssd.sock"), str(DURATION)])
    load = Load(vssd, mnt, DURATION)
    load.run(load.pair_sets, 1)
    load.run(load.pair_sets, 2)
    load.run(load.fs_sets, 3)
    load.run(load.writer_churn, 4)
    load.run(load.writer_churn, 5)
    load.run(load.requester_killed, 6)
    load.run(load.requester_killed, 7)
    load.run(load.unprivileged_lister, 8)
    load.join()
    hostile.kill()
    hostile.wait()
    assert pair.poll() is None and files.poll() is None, "a data writer died"
    print("stress:", json.dumps(load.counts, sort_keys=True))
    assert not load.errors, "\n".join(load.errors[:10])
    assert load.counts.get("pair set", 0) >= 10, load.counts
    assert load.counts.get("fs set", 0) >= 3, load.counts

    # Nothing frozen: the ext4 volume takes a synced write at once.
    r = subprocess.run(["timeout", "20", "sh", "-c", "echo x > %s/probe && sync -f %s/probe"
                        % (mnt, mnt)], capture_output=True)
    assert r.returncode == 0, "the ext4 volume does not take writes: frozen?"
    # No set in progress, no session left: the backup slot is free.
    assert all(s["state"] != "in-progress" for s in vssd.shadows())
    r = vssd.vss("exec", "--for", mnt, "--", "true", check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    # Every shadow still listed is exact.
    pair.kill()
    pair.wait()
    sets = {}
    for s in vssd.shadows():
        sets.setdefault(s["set"], []).append(s)
    checked = 0
    for members in sets.values():
        if {m["volume"] for m in members} == {"A", "B"}:
            check_pair(vssd, members)
            checked += 1
    assert checked >= 1, "no set of the pair survived to be checked"
    # Descriptors and memory back near where they started (writers gone,
    # connections closed).  Two pools may keep what the load grew them to,
    # bounded: the FUSE workers kept idle (16, each with its own /dev/fuse
    # descriptor: lib/transport/fuse.c) and the idle io_uring rings of shadow
    # reads (one per read that ran at once: at most one per FUSE worker, 64).
    vssd.vss("delete", "shadows", "--all")
    files.kill()
    files.wait()

    def pooled(name):
        return name == "/dev/fuse" or name == "anon_inode:[io_uring]"

    def others(names):
        return sorted(n for n in names if not pooled(n))

    deadline = time.time() + 30
    while time.time() < deadline and len(others(vssd_fd_names(vssd))) > len(others(names0)):
        time.sleep(0.5)
    names1, rss1 = vssd_fd_names(vssd), vssd_rss_kb(vssd)
    print("stress: vssd fds %d -> %d (pooled %d -> %d), RSS %d -> %d KiB" % (
        len(names0), len(names1), len(names0) - len(others(names0)),
        len(names1) - len(others(names1)), rss0, rss1))
    assert len(others(names1)) <= len(others(names0)), \
        "vssd holds descriptors it did not before the load: %s -> %s" % (
            others(names0), others(names1))
    assert names1.count("/dev/fuse") <= names0.count("/dev/fuse") + 16, names1
    assert names1.count("anon_inode:[io_uring]") <= 64, names1
    assert rss1 <= rss0 + 64 * 1024, "vssd's RSS grew from %d to %d KiB" % (rss0, rss1)
    assert vssd.proc.poll() is None
