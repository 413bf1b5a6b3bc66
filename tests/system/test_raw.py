"""Raw volumes: shadows read exactly what the volume held at their instant.

The reference for each instant is a hash of the volume's backing file (the
origin itself, read without the engine) taken right before the shadow, with
no writer running; the shadow is read back through its device afterwards,
after more rounds of writes have gone through copy-on-write.
"""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from conftest import sha256_file


def dd_round(dev, size, rng, writes=24):
    """Random patterns at random (also unaligned) offsets, with dd."""
    for _ in range(writes):
        length = rng.choice([512, 4096, 16384, 65536, 1 << 20, 3 * 4096 + 100])
        off = rng.randrange(0, size - length)
        data = rng.randbytes(length)
        subprocess.run(["dd", "of=" + dev, "bs=%d" % length, "count=1",
                        "oflag=seek_bytes", "seek=%d" % off, "conv=notrunc,fsync", "iflag=fullblock",
                        "status=none"], input=data, check=True)


def fio_round(dev, seed, io_size="4M"):
    subprocess.run(["fio", "--name=round", "--filename=" + dev, "--rw=randwrite",
                    "--bs=4k", "--direct=1", "--ioengine=psync", "--io_size=" + io_size,
                    "--randseed=%d" % seed, "--allow_file_create=0", "--fsync_on_close=1",
                    "--output=/dev/null"], check=True)


def origin_hash(d, name):
    v = d.volume(name)
    return sha256_file(v["backing"], v["size"])


@pytest.mark.parametrize("block_size", ["4K", "16K", "64K"])
def test_shadows_match_reference(vssd, block_size):
    size = 32 << 20
    vol = vssd.create_volume("raw", str(size), "--block-size", block_size)
    dev = vol["device"]
    rng = random.Random(1234)
    taken = []
    for r in range(6):
        if r % 2:
            fio_round(dev, seed=r + 1)
        else:
            dd_round(dev, size, rng)
        ref = origin_hash(vssd, "raw")
        # The live device reads the origin too.
        assert sha256_file(dev, size) == ref
        s = vssd.shadow("raw")["shadows"][0]
        taken.append((s["id"], ref))
    dd_round(dev, size, rng)
    for sid, ref in taken:
        assert sha256_file(os.path.join(vssd.run, "dev", "shadows", sid), size) == ref, sid
    # Deleting one in the middle leaves the others exact.
    vssd.vss("delete", "shadows", "--shadow", taken[2][0][:8])
    del taken[2]
    dd_round(dev, size, rng)
    for sid, ref in taken:
        assert sha256_file(os.path.join(vssd.run, "dev", "shadows", sid), size) == ref, sid
    listed = [s["id"] for s in vssd.shadows("--for", "raw")]
    assert listed == [sid for sid, _ in taken]


def test_shadow_device_is_read_only_and_root_only(vssd):
    vssd.create_volume("v", "8M")
    sid = vssd.shadow("v")["shadows"][0]["id"]
    path = os.path.join(vssd.run, "dev", "shadows", sid)
    with pytest.raises(OSError):
        os.open(path, os.O_WRONLY)
    assert os.stat(path).st_mode & 0o777 == 0o400
    assert os.stat(vssd.device("v")).st_mode & 0o777 == 0o600
    # Someone else cannot read either.
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "dd", "if=" + path, "of=/dev/null", "count=1", "status=none"],
                       capture_output=True)
    assert r.returncode != 0


def test_persistent_shadows_survive_restart(vssd):
    size = 16 << 20
    dev = vssd.create_volume("p", str(size))["device"]
    rng = random.Random(7)
    kept = []
    for r in range(3):
        dd_round(dev, size, rng)
        ref = origin_hash(vssd, "p")
        kept.append((vssd.shadow("p", persistent=True)["shadows"][0]["id"], ref))
    dd_round(dev, size, rng)
    dropped = vssd.shadow("p")["shadows"][0]["id"]
    dd_round(dev, size, rng)
    live = origin_hash(vssd, "p")

    vssd.restart()
    ids = [s["id"] for s in vssd.shadows()]
    assert ids == [sid for sid, _ in kept]
    assert dropped not in ids
    for sid, ref in kept:
        assert sha256_file(os.path.join(vssd.run, "dev", "shadows", sid), size) == ref
    assert sha256_file(vssd.device("p"), size) == live
    assert all("persistent" in s["attributes"] for s in vssd.shadows())
    assert "not persistent" in vssd.log()


STORM = r"""
import os, random, struct, sys
# Writer N of 4 owns the N-th quarter of the device and writes 4 KiB records
# (N, count) at random places in it; after each write returns, it logs
# "offset count" to its log, so the log names only acknowledged writes.
fd = os.open(sys.argv[1], os.O_RDWR)
size, n = int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(n)
quarter = size // 4
log = os.open(sys.argv[4], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
count = 0
while True:
    count += 1
    off = n * quarter + rng.randrange(0, quarter // 4096) * 4096
    try:
        os.pwrite(fd, struct.pack("<QQ", n, count) * 256, off)
    except OSError:
        sys.exit(0)
    os.write(log, b"%d %d\n" % (off, count))
"""


def acknowledged(log):
    """offset -> count of the last write the log says returned."""
    last = {}
    with open(log, "rb") as f:
        for line in f.read().split(b"\n"):
            parts = line.split()
            if len(parts) == 2:
                last[int(parts[0])] = int(parts[1])
    return last


def test_kill9_during_write_storm(vssd):
    size = 32 << 20
    dev = vssd.create_volume("storm", str(size))["device"]
    rng = random.Random(99)
    kept = []
    for r in range(4):
        dd_round(dev, size, rng)
        ref = origin_hash(vssd, "storm")
        kept.append((vssd.shadow("storm", persistent=True)["shadows"][0]["id"], ref))
        if r == 1:
            vssd.shadow("storm")  # a non-persistent one in between
    logs = [os.path.join(vssd.root, "storm%d.log" % s) for s in range(4)]
    writers = [vssd.spawn([sys.executable, "-c", STORM, dev, str(size), str(s), logs[s]])
               for s in range(4)]
    time.sleep(2)
    assert all(w.poll() is None for w in writers), "the storm did not run"
    vssd.kill9()
    for w in writers:
        try:
            w.wait(10)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()

    vssd.start()
    # Every write that returned before the kill is on the volume (or a
    # later one of the same writer, in flight at the kill, is).
    import struct
    with open(dev, "rb", buffering=0) as f:
        checked = 0
        for n, log in enumerate(logs):
            for off, count in acknowledged(log).items():
                f.seek(off)
                who, got = struct.unpack("<QQ", f.read(16))
                assert who == n and got >= count, \
                    "write %d of writer %d at %d lost: found (%d, %d)" % (count, n, off, who, got)
                checked += 1
    assert checked > 100, "the storm wrote too little to tell"
    ids = [s["id"] for s in vssd.shadows()]
    assert ids == [sid for sid, _ in kept]
    for sid, ref in kept:
        assert sha256_file(os.path.join(vssd.run, "dev", "shadows", sid), size) == ref, sid
    # The live volume works and shadows keep working after the restart.
    dd_round(dev, size, rng)
    ref = origin_hash(vssd, "storm")
    sid = vssd.shadow("storm")["shadows"][0]["id"]
    dd_round(dev, size, rng)
    assert sha256_file(os.path.join(vssd.run, "dev", "shadows", sid), size) == ref
    for sid, ref in kept:
        assert sha256_file(os.path.join(vssd.run, "dev", "shadows", sid), size) == ref, sid


ORDER_WRITER = r"""
import os, struct, sys
a = os.open(sys.argv[1], os.O_RDWR); b = os.open(sys.argv[2], os.O_RDWR)
i = 0
while True:
    i += 1
    rec = struct.pack("<Q", i) * 512          # 4 KiB
    os.pwrite(a, rec, 0)                      # A first...
    os.pwrite(b, rec, 0)                      # ...then B
"""


def read_seq(path):
    import struct
    with open(path, "rb", buffering=0) as f:
        return struct.unpack("<Q", f.read(8))[0]


def test_set_of_two_volumes_is_one_instant(vssd):
    vssd.create_volume("A", "8M")
    vssd.create_volume("B", "8M")
    w = vssd.spawn([sys.executable, "-c", ORDER_WRITER, vssd.device("A"), vssd.device("B")])
    time.sleep(0.3)
    seen = []
    for _ in range(25):
        s = vssd.shadow("A", "B")
        by_vol = {x["volume"]: x["device"] for x in s["shadows"]}
        a, b = read_seq(by_vol["A"]), read_seq(by_vol["B"])
        # B is written after A: a set may show A ahead by one, never B ahead.
        assert b <= a <= b + 1, (a, b)
        seen.append(a)
        time.sleep(0.02)
    assert w.poll() is None
    w.kill()
    assert seen[-1] > seen[0], "the writer made no progress"
    assert len({x["set"] for x in vssd.shadows()}) == 25
