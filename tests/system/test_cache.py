"""The page cache above the engine (doc/service.md, "The write path and
caching"): a mounted volume's loop device writes into the FUSE writeback
cache, every other open of a device is direct.  What must still hold:

- an fsync that returned is in the origin and the diff area, even if vssd
  is killed the next moment (the dirty pages of a killed FUSE server are
  lost, so only a writeback before the FSYNC reply keeps them);
- a raw volume's shadow holds every write that returned before the shadow
  was asked for (its writers' opens are direct, never cached);
- what a stopped vssd leaves dirty above it is bounded, and other devices'
  writers do not wait for it;
- a set settles a volume by making its loop device write through for the
  set (direct I/O) and gives the cache back after, without touching the
  tree's dirty bound (lowering it ground the tree's write rate down).
The shadows of filesystems under a writer are test_fs.py's; a set of two
raw volumes is test_raw.py's and test_stress.py's; a revert under the
cache test_image.py's (the remount reads the reverted bytes).
"""
import glob
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

from conftest import VSS, sha256_file

BLOCK = 4096


def image_blocks(path):
    """The set of sha256 digests of every 4 KiB block of @path."""
    out = set()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return out
            for i in range(0, len(b), BLOCK):
                out.add(hashlib.sha256(b[i:i + BLOCK]).digest())


def shadow_file(d, sid, name):
    """The bytes of file @name in shadow @sid of vssd @d (exposed, read, unexposed)."""
    exp = os.path.join(d.root, "exp")
    d.vss("expose", sid, exp)
    try:
        with open(os.path.join(exp, name), "rb") as fh:
            return fh.read()
    finally:
        d.vss("unexpose", exp)


def blocks_of(data):
    return [hashlib.sha256(data[i:i + BLOCK]).digest() for i in range(0, len(data), BLOCK)]


def test_fsync_is_durable_when_vssd_is_killed(vssd):
    mnt = os.path.join(vssd.root, "mnt")
    vssd.create_volume("c", "64M")
    vssd.vss("volume", "mount", "c", mnt, "--mkfs", "ext4")
    f = os.path.join(mnt, "f")
    rng = random.Random(19)
    old, new = rng.randbytes(1 << 20), rng.randbytes(1 << 20)
    with open(f, "wb") as fh:
        fh.write(old)
        os.fsync(fh.fileno())
    sid = vssd.shadow("c", persistent=True)["shadows"][0]["id"]
    # Rewritten in place: with the shadow, every block is a first write
    # (its copy and the new bytes go through the diff area's redo queue).
    fd = os.open(f, os.O_WRONLY)
    try:
        os.pwrite(fd, new, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    vssd.kill9()
    # The origin holds the new bytes: the fsync wrote the cached pages
    # back and the engine applied them before it returned.
    origin = glob.glob(os.path.join(vssd.state, "volumes", "c-*.img"))
    assert len(origin) == 1
    have = image_blocks(origin[0])
    missing = sum(1 for b in blocks_of(new) if b not in have)
    assert missing == 0, "%d of 256 fsynced blocks are not in the origin" % missing
    # The diff area held the copies: the persistent shadow reads the old.
    vssd.start()
    assert shadow_file(vssd, sid, "f") == old


WRITER = r"""
import os, sys
# Buffered (no O_DIRECT, no fsync), and the file stays open until the
# shadow is taken (a close would flush a cache): after each write returns,
# its number goes to stdout; the shadow must hold every one printed.
fd = os.open(sys.argv[1], os.O_RDWR)
for i in range(1, int(sys.argv[2]) + 1):
    os.pwrite(fd, i.to_bytes(8, "little") * 512, i * 4096)
    print(i, flush=True)
print("done", flush=True)
sys.stdin.read()
"""


def test_raw_volume_shadow_holds_returned_writes(vssd):
    dev = vssd.create_volume("r", "16M")["device"]
    n = 2048
    w = vssd.spawn([sys.executable, "-c", WRITER, dev, str(n)], stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, text=True)
    returned = []
    for line in w.stdout:
        if line.strip() == "done":
            break
        returned.append(int(line))
    assert returned and returned[-1] == n
    # Asked for right after the last write returned, with no flush or
    # close between.
    sid = vssd.shadow("r")["shadows"][0]["id"]
    w.stdin.close()
    assert w.wait(30) == 0
    with open(os.path.join(vssd.run, "dev", "shadows", sid), "rb") as fh:
        data = fh.read((n + 1) * 4096)
    for i in returned:
        assert data[i * 4096:(i + 1) * 4096] == i.to_bytes(8, "little") * 512, \
            "write %d returned before the shadow was asked for and is not in it" % i


def bdi_of(path_or_dev, block=False):
    st = os.stat(path_or_dev)
    d = st.st_rdev if block else st.st_dev
    return "/sys/class/bdi/%d:%d" % (os.major(d), os.minor(d))


def read_int(path):
    with open(path) as f:
        return int(f.read())


def wchar(pid):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def test_stopped_vssd_holds_back_a_bounded_amount(vssd, workdir):
    mnt = os.path.join(vssd.root, "mnt")
    dev = vssd.create_volume("b", "4G")["device"]
    # No journal: a commit that waits for the stopped vssd would hold the
    # writer back by itself, whatever the dirty bounds.
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-E", "nodiscard", dev],
                   check=True, capture_output=True)
    vssd.vss("volume", "mount", "b", mnt)
    loop = vssd.volume("b")["loop"]
    tree, fsb = bdi_of(os.path.join(vssd.run, "dev")), bdi_of(loop, block=True)
    assert read_int(tree + "/strict_limit") == 1 and read_int(fsb + "/strict_limit") == 1
    bound = read_int(tree + "/max_bytes") + read_int(fsb + "/max_bytes")
    assert 0 < bound < 2 << 30
    # Made while vssd runs: creating it reads metadata from the volume.
    big = os.path.join(mnt, "big")
    with open(big, "wb") as fh:
        fh.write(b"\1" * (1 << 20))
        os.fsync(fh.fileno())
    vssd.proc.send_signal(signal.SIGSTOP)
    try:
        # A buffered writer on the volume stalls once the bounds are full...
        dd = vssd.spawn(["dd", "if=/dev/zero", "of=" + big, "bs=1M", "seek=1",
                         "conv=notrunc", "count=%d" % ((bound >> 20) + 1024)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # (it may creep on by a page now and then: each is a paused write)
        seen, still = -1, 0
        for _ in range(100):
            time.sleep(0.1)
            now = wchar(dd.pid)
            still = still + 1 if now == seen else 0
            seen = now
            if still >= 10 or dd.poll() is not None or seen > bound + (64 << 20):
                break
        assert dd.poll() is None, "dd finished: nothing held it back"
        assert seen <= bound + (64 << 20), "%d MiB dirty above a stopped vssd (bound %d)" % (
            seen >> 20, bound >> 20)
        # ... and a writer of another device is not held with it (this
        # hangs, and the test times out, if the machine's dirty limit is
        # reached).
        other = os.path.join(workdir, "other")
        with open(other, "wb") as fh:
            fh.write(b"\0" * (64 << 20))
            os.fsync(fh.fileno())
        os.unlink(other)
    finally:
        vssd.proc.send_signal(signal.SIGCONT)
    dd.kill()
    dd.wait()


def test_set_writes_through_while_it_settles(daemon_factory):
    d = daemon_factory(env={"VSS_TEST_FREEZE_HOLD_MS": "1500"})
    mnt = os.path.join(d.root, "mnt")
    d.create_volume("s", "256M")
    d.vss("volume", "mount", "s", mnt, "--mkfs", "ext4")
    loop = d.volume("s")["loop"]
    dio = "/sys/block/%s/loop/dio" % os.path.basename(loop)
    tree = bdi_of(os.path.join(d.run, "dev"))
    bound = read_int(tree + "/max_bytes")
    assert read_int(dio) == 0, "a mounted volume's loop device is not cached"
    data = os.urandom(8 << 20)
    with open(os.path.join(mnt, "f"), "wb") as fh:   # dirty, not synced
        fh.write(data)
    c = d.spawn([VSS, "--run-dir", d.run, "create", "shadow", "--for", mnt, "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while "holding the freeze" not in d.log():
        assert time.time() < deadline and c.poll() is None, c.stderr.read() if c.poll() else ""
        time.sleep(0.02)
    assert read_int(dio) == 1, "the loop device kept its cache through the set"
    # (read back through the kernel's ratio: equal within its rounding)
    assert read_int(tree + "/max_bytes") > bound // 2, "the set lowered the tree's dirty bound"
    out, err = c.communicate(timeout=30)
    assert c.returncode == 0, err
    assert read_int(dio) == 0, "the loop device was not given its cache back"
    # what was dirty when the set began is in the shadow
    assert shadow_file(d, json.loads(out)["shadows"][0]["id"], "f") == data
