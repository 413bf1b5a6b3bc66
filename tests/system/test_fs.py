"""Filesystems on volumes: ext4 and xfs made and mounted through vss, a
writer changing a real tree of files while shadows are taken, and every
shadow exposed and compared file by file with a manifest of the tree made
at its instant.  Also the freeze's guarantees: a set of two filesystems,
the guardian thawing after vssd dies, the hold bound, and the refusal to
freeze a filesystem the service depends on.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import VSS, ext4_groups

TREE_WRITER = r"""
import os, random, sys
root = sys.argv[1]; rng = random.Random(int(sys.argv[2]))
n = 0
while True:
    n += 1
    d = os.path.join(root, "d%d" % rng.randrange(8))
    os.makedirs(d, exist_ok=True)
    f = os.path.join(d, "f%d" % rng.randrange(40))
    op = rng.random()
    if op < 0.55:
        with open(f, "wb") as fh:                    # rewrite
            fh.write(rng.randbytes(rng.randrange(1, 256 * 1024)))
    elif op < 0.8:
        with open(f, "ab") as fh:                    # append
            fh.write(rng.randbytes(rng.randrange(1, 64 * 1024)))
    elif op < 0.9 and os.path.exists(f):
        os.rename(f, f + ".r%d" % n)
    elif os.path.exists(f):
        os.unlink(f)
    if n % 50 == 0:
        os.sync() if rng.random() < 0.2 else None
"""


def manifest(root):
    """{relative path: (kind, size, sha256)} of everything under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == "lost+found" or rel.startswith("lost+found/"):
            continue
        out[rel] = ("dir", 0, "")
        for name in filenames:
            p = os.path.join(dirpath, name)
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
            out[os.path.join(rel, name)] = ("file", os.path.getsize(p), h.hexdigest())
    return out


def busy_tree(d, data, seed, seconds=1.0):
    """Runs TREE_WRITER on @data for @seconds, then stops it (SIGSTOP) at a
    known state: (the writer, for SIGCONT or kill; the manifest of now)."""
    w = d.spawn([sys.executable, "-c", TREE_WRITER, data, str(seed)])
    time.sleep(seconds)
    w.send_signal(signal.SIGSTOP)
    wait_stopped(w.pid)
    return w, manifest(data)


def wait_stopped(pid, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return
        time.sleep(0.01)
    raise AssertionError("writer did not stop")


@pytest.mark.parametrize("fstype", ["ext4", "xfs", "btrfs"])
def test_filesystem_shadows_match_manifests(vssd, fstype):
    mnt = os.path.join(vssd.root, "mnt")
    vssd.create_volume("fs", "512M")
    vssd.vss("volume", "mount", "fs", mnt, "--mkfs", fstype)
    assert vssd.volume("fs")["mount"] == mnt
    data = os.path.join(mnt, "data")
    os.mkdir(data)
    w = vssd.spawn([sys.executable, "-c", TREE_WRITER, data, "5"])
    taken = []
    for k in range(4):
        time.sleep(0.7)
        # Stop the writer where it is (files open, dirty data in the page
        # cache): the manifest of this instant is what the shadow must hold.
        w.send_signal(signal.SIGSTOP)
        wait_stopped(w.pid)
        m = manifest(mnt)
        res = vssd.shadow(mnt if k % 2 == 0 else data)
        w.send_signal(signal.SIGCONT)
        assert res["frozen_ms"] > 0
        taken.append((res["shadows"][0]["id"], m))
    time.sleep(0.5)
    assert w.poll() is None, "the writer died"
    w.kill()
    w.wait()
    assert "frozen for" in vssd.log()
    for i, (sid, m) in enumerate(taken):
        exp = os.path.join(vssd.root, "exp%d" % i)
        vssd.vss("expose", sid, exp)
        try:
            got = manifest(exp)
            assert len(got) > 5
            assert got == m, "shadow %s differs from its manifest" % sid
        finally:
            vssd.vss("unexpose", exp)
    # The volume unmounts cleanly, and mounts again.
    vssd.vss("volume", "umount", "fs")
    vssd.vss("volume", "mount", "fs", mnt)
    assert os.path.isdir(data)


# Creates file i in A, fsyncs it, then file i in B, for i = 1, 2, ...
PAIR_WRITER = r"""
import os, sys
a, b = sys.argv[1], sys.argv[2]
i = 0
while True:
    i += 1
    for d in (a, b):
        fd = os.open(os.path.join(d, "f%06d" % i), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"%d\n" % i)
        os.fsync(fd)
        os.close(fd)
"""


def test_two_filesystems_in_one_set(vssd):
    """A writer creates file i in A, fsyncs, then file i in B: a set may
    never hold B's file i without A's."""
    ma, mb = os.path.join(vssd.root, "ma"), os.path.join(vssd.root, "mb")
    for name, m in (("A", ma), ("B", mb)):
        vssd.create_volume(name, "128M")
        vssd.vss("volume", "mount", name, m, "--mkfs", "ext4")
    w = vssd.spawn([sys.executable, "-c", PAIR_WRITER, ma, mb])
    time.sleep(0.3)
    sets = [vssd.shadow(ma, mb) for _ in range(5)]
    w.kill()
    w.wait()
    for k, s in enumerate(sets):
        dirs = {}
        for sh in s["shadows"]:
            d = os.path.join(vssd.root, "e%d%s" % (k, sh["volume"]))
            vssd.vss("expose", sh["id"], d)
            dirs[sh["volume"]] = d
        try:
            fa = {f for f in os.listdir(dirs["A"]) if f.startswith("f")}
            fb = {f for f in os.listdir(dirs["B"]) if f.startswith("f")}
            assert fa, "the writer had written nothing by this set"
            assert fb <= fa, sorted(fb - fa)[:5]
            assert len(fa) - len(fb) <= 1
        finally:
            for d in dirs.values():
                vssd.vss("unexpose", d)


def write_returns(path, timeout):
    """True if a small write into @path's filesystem returns within @timeout."""
    p = subprocess.Popen(["sh", "-c", "echo x > '%s'" % path])
    try:
        p.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False
    finally:
        if p.poll() is None:
            p.kill()


def frozen_for_6s(daemon_factory):
    """A vssd that holds a set's freeze 6 s (VSS_TEST_FREEZE_HOLD_MS), an
    ext4 volume at mnt, and `vss create shadow` of it inside the freeze:
    (the daemon, mnt, the vss process)."""
    d = daemon_factory(env={"VSS_TEST_FREEZE_HOLD_MS": "6000"})
    mnt = os.path.join(d.root, "mnt")
    d.create_volume("g", "128M")
    d.vss("volume", "mount", "g", mnt, "--mkfs", "ext4")
    c = d.spawn([VSS, "--run-dir", d.run, "create", "shadow", "--for", mnt],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while "holding the freeze" not in d.log():
        assert time.time() < deadline
        time.sleep(0.05)
    return d, mnt, c


def test_guardian_thaws_when_vssd_dies(daemon_factory):
    d, mnt, c = frozen_for_6s(daemon_factory)
    time.sleep(0.3)
    assert not write_returns(os.path.join(mnt, "during"), 0.5), "not frozen"
    t0 = time.time()
    d.kill9()
    assert write_returns(os.path.join(mnt, "after"), 5), "still frozen after vssd died"
    assert time.time() - t0 < 5
    assert "vssd went away during a freeze; thawed" in d.log()
    c.wait(10)
    assert c.returncode != 0


def test_guardian_thaws_when_told_to_stop(daemon_factory):
    """A service manager stopping vssd's whole group (systemd's default
    KillMode) sends the guardian SIGTERM too: it thaws before it goes."""
    d, mnt, c = frozen_for_6s(daemon_factory)
    guardians = subprocess.run(["pgrep", "-P", str(d.proc.pid), "-x", "vss-guardian"],
                               capture_output=True, text=True).stdout.split()
    assert len(guardians) == 1, guardians
    assert not write_returns(os.path.join(mnt, "during"), 0.5), "not frozen"
    t0 = time.time()
    os.kill(int(guardians[0]), signal.SIGTERM)
    assert write_returns(os.path.join(mnt, "after"), 5), "still frozen after the guardian's SIGTERM"
    assert time.time() - t0 < 3
    deadline = time.time() + 5
    while "told to stop during a freeze; thawed" not in d.log():
        assert time.time() < deadline, d.log()
        time.sleep(0.05)
    c.wait(15)


def test_freeze_hold_is_bounded(daemon_factory):
    d = daemon_factory(env={"VSS_TEST_FREEZE_HOLD_MS": "12000"})
    mnt = os.path.join(d.root, "mnt")
    d.create_volume("b", "128M")
    d.vss("volume", "mount", "b", mnt, "--mkfs", "ext4")
    t0 = time.time()
    r = d.vss("create", "shadow", "--for", mnt, check=False)
    assert r.returncode == 1
    assert "frozen longer than" in r.stderr
    assert time.time() - t0 >= 10
    assert "exceeded its bound" in d.log()
    assert d.shadows() == []
    assert write_returns(os.path.join(mnt, "after"), 5)


def host_of_a_volume(vssd, size="128M", inner=16 << 20):
    """Volume "host" mounted at ROOT/mnt, holding the backing file of volume
    "inner": vss-cow refuses to freeze it (the service needs it), so its
    provider fails at prepare.  Returns the mount point."""
    mnt = os.path.join(vssd.root, "mnt")
    vssd.create_volume("host", size)
    vssd.vss("volume", "mount", "host", mnt, "--mkfs", "ext4")
    backing = os.path.join(mnt, "inner.img")
    with open(backing, "wb") as f:
        f.truncate(inner)
    vssd.vss("volume", "create", "inner", "--backing", backing)
    return mnt


def test_refuses_to_freeze_what_the_service_needs(vssd):
    mnt = host_of_a_volume(vssd)
    r = vssd.vss("create", "shadow", "--for", mnt, check=False)
    assert r.returncode == 1
    assert "refusing to freeze" in r.stderr
    assert write_returns(os.path.join(mnt, "after"), 5)
    # A shadow storage on a vss volume is refused too.
    r = vssd.vss("add", "shadowstorage", "--for", "inner", "--on", mnt, check=False)
    assert r.returncode == 1
    # With --allow-live the provider's failure at prepare leaves that member
    # read live, and says so for it: in JSON, on standard error, in vss exec.
    with open(os.path.join(mnt, "kept"), "w") as f:
        f.write("live")
    r = vssd.vss("create", "shadow", "--for", mnt, "--allow-live", "--json")
    res = json.loads(r.stdout)
    sh = res["shadows"][0]
    assert sh["live"] and sh["provider"] == "live" and sh["target"] == mnt
    assert "provider vss-cow failed at prepare" in sh["fallback"]
    assert "refusing to freeze" in sh["fallback"] and mnt in sh["fallback"]
    assert sh["fallback"] in res["warnings"]
    assert "vss: warning: " + mnt + ": provider vss-cow failed at prepare" in r.stderr
    assert "provider vss-cow failed at prepare" in vssd.log()
    vssd.vss("delete", "shadows", "--all")
    r = vssd.vss("create", "shadow", "--for", mnt, "--allow-live")
    assert "provider vss-cow failed at prepare" in r.stderr
    assert r.stdout.splitlines()[1].split()[1] == mnt
    vssd.vss("delete", "shadows", "--all")
    r = vssd.vss("exec", "--for", mnt, "--allow-live", "--no-writers", "--", "sh", "-c",
                 'test "$VSS_SHADOW_LIVE_1" = 1 && cat "$VSS_SHADOW_TARGET_1/kept"')
    assert r.stdout == "live" and "provider vss-cow failed at prepare" in r.stderr
    # A member that needs no fallback has none.
    res = vssd.json("create", "shadow", "--for", "inner", "--allow-live")
    assert res["shadows"][0]["fallback"] is None and not res["shadows"][0]["live"]
    vssd.vss("delete", "shadows", "--all")
    assert vssd.shadows() == []
    vssd.vss("volume", "delete", "inner")


def test_unmounted_behind_our_back_is_never_frozen(vssd):
    mnt = os.path.join(vssd.root, "mnt")
    vssd.create_volume("x", "128M")
    vssd.vss("volume", "mount", "x", mnt, "--mkfs", "ext4", "-o", "noatime")
    with open("/proc/self/mounts") as f:
        assert any(l.split()[1] == mnt and "noatime" in l.split()[3] for l in f)
    subprocess.run(["umount", mnt], check=True)
    # The directory is now on the temporary directory's filesystem: vss must
    # neither resolve it to the volume nor freeze anything.
    r = vssd.vss("create", "shadow", "--for", mnt, check=False)
    assert r.returncode == 1 and "not inside a mounted volume" in r.stderr
    assert vssd.volume("x")["mount"] is None
    assert "unmounted outside vss" in vssd.log()
    vssd.vss("volume", "mount", "x", mnt)
    vssd.shadow(mnt)


def test_mkfs_ext4_leaves_no_zeroing_behind(vssd, workdir):
    """`volume mount --mkfs ext4` leaves no inode table to the kernel's lazy
    init, which would zero it after the mount, into the diff area of every
    shadow taken meanwhile.  On a new volume, which reads all zeros, mkfs
    writes no zeros at all (its inode tables and journal: ~25 MB of 256 MiB
    here, 400 KB written without them); on a volume that held data it
    zeroes the tables itself."""
    size = 256 << 20
    new = vssd.create_volume("new", "256M")
    vssd.create_volume("old", "256M")
    fd = os.open(vssd.device("old"), os.O_WRONLY)
    try:
        for off in range(0, size, 1 << 20):
            os.pwrite(fd, b"\xa5" * (1 << 20), off)
        os.fsync(fd)
    finally:
        os.close(fd)
    for name in ("new", "old"):
        mnt = os.path.join(workdir, name)
        vssd.vss("volume", "mount", name, mnt, "--mkfs", "ext4")
        with open(os.path.join(mnt, "file"), "wb") as f:
            f.write(b"x" * 100000)
    # What the new volume's origin holds: the superblocks, bitmaps and
    # directories mkfs wrote, not its 16 MiB of inode tables (65,536
    # inodes of 256 bytes) nor its journal.
    used = os.stat(new["backing"]).st_blocks * 512
    assert used < 4 << 20, used
    for name in ("new", "old"):
        bsize, groups = ext4_groups(vssd.device(name))
        assert len(groups) > 1 and all("ITABLE_ZEROED" in g[0] for g in groups), groups
        # The last group's inode table (no inode in it is used) reads
        # zeros: on the old volume mkfs wrote them over the 0xa5.
        _, first, last = groups[-1]
        with open(vssd.device(name), "rb") as f:
            f.seek(first * bsize)
            table = f.read((last - first + 1) * bsize)
        assert table == bytes(len(table)), name
        vssd.vss("volume", "umount", name)
        r = subprocess.run(["e2fsck", "-fn", vssd.device(name)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
