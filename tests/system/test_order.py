"""Writes are never reordered across a flush or a shadow's instant, with
the FUSE writeback cache under a mounted volume (doc/service.md, "The
write path and caching").

Writers on ext4 on a vss volume (direct and buffered, each thread its own
blocks, fdatasync now and then) stamp every 4 KiB block with its number
and a sequence number, and log, on CLOCK_MONOTONIC, when each write was
issued and returned and when each fdatasync began and ended.  Sets are
taken at random moments meanwhile.  Then every shadow is checked against
that log alone (the independent reference), block by block:
  - it holds a whole write (no torn or foreign block);
  - at least the newest write of that block that returned before the set
    was asked for (vss create shadow started);
  - no write issued after the set was taken (the command returned);
  - never reordered across a flush: if it holds a write issued after an
    fdatasync ended, it holds every write that returned before that
    fdatasync began;
and each shadow's ext4 reads the file as its blocks hold it.  The second
test kills vssd (kill -9) right after the writers stopped, with a
persistent shadow taken among them: the volume after the restart may have
lost what no fdatasync covered, nothing else, under the same rules, and
the shadow still holds its instant.

The third test sees the `fdatasync` of the origin in the engine's flush,
which a kill -9 of vssd cannot (the host's page cache survives it): the
volume is backed by a disk with a volatile write cache that the test owns
(vss-test-volatile-disk, a FUSE file: only an fsync of it puts writes in
its durable image, what a power loss of the host would leave), and after
an fsync of the raw volume, then of a file on ext4 on it, returned, that
image must hold the bytes.
"""
import fcntl
import mmap
import os
import random
import struct
import subprocess
import sys
import time

from conftest import BUILD

VOLATILE_DISK = os.path.abspath(os.path.join(BUILD, "tests", "system",
                                             "vss-test-volatile-disk"))
BLOCK = 4096
NBLOCKS = 2048          # an 8 MiB file
THREADS = 4             # thread t writes the blocks b with b % THREADS == t
MAGIC = b"VSSORDER"

# Block @b at sequence number @seq (0: as laid out).
def block_bytes(b, seq):
    head = MAGIC + struct.pack("<QQ", b, seq)
    return (head * (BLOCK // len(head) + 1))[:BLOCK]


WRITER = r"""
import mmap, os, random, struct, sys, threading, time
BLOCK, NBLOCKS, THREADS, MAGIC = 4096, %d, %d, %r
def block_bytes(b, seq):
    head = MAGIC + struct.pack("<QQ", b, seq)
    return (head * (BLOCK // len(head) + 1))[:BLOCK]
path, seed = sys.argv[1], int(sys.argv[2])
stop = threading.Event()
lock = threading.Lock()
seq = [0]
out = []
def next_seq():
    with lock:
        seq[0] += 1
        return seq[0]
def writer(t):
    rng = random.Random(seed * 100 + t)
    direct = t %% 2 == 0            # threads 0 and 2 O_DIRECT, 1 and 3 buffered
    fd = os.open(path, os.O_RDWR | (os.O_DIRECT if direct else 0))
    buf = mmap.mmap(-1, BLOCK)      # page-aligned, as O_DIRECT wants
    log = []
    since = 0                       # writes since this thread's last fdatasync
    try:
        while not stop.is_set():
            b = rng.randrange(t, NBLOCKS, THREADS)
            s = next_seq()
            buf[:] = block_bytes(b, s)
            ti = time.monotonic_ns()
            os.pwrite(fd, buf, b * BLOCK)
            log.append("W %%d %%d %%d %%d" %% (s, b, ti, time.monotonic_ns()))
            since += 1
            if rng.random() < 0.005 or since >= 300:
                since = 0
                fi = time.monotonic_ns()
                os.fdatasync(fd)
                log.append("F %%d %%d" %% (fi, time.monotonic_ns()))
            if rng.random() < 0.1:
                time.sleep(0.001)
    finally:
        os.close(fd)
        with lock:
            out.extend(log)
threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
for th in threads:
    th.start()
print("started", flush=True)
sys.stdin.read()                    # until the test closes it
stop.set()
for th in threads:
    th.join()
print("\n".join(out))
print("end", flush=True)
""" % (NBLOCKS, THREADS, MAGIC)


FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 1
FIEMAP_EXTENT_LAST = 1


def extents(path, nmax=64):
    """(logical, physical, length) of every extent of @path, in bytes."""
    res = bytearray(struct.pack("<QQIIII", 0, 1 << 62, FIEMAP_FLAG_SYNC, 0, nmax, 0) +
                    bytes(56 * nmax))
    with open(path, "rb") as fh:
        fcntl.ioctl(fh.fileno(), FS_IOC_FIEMAP, res)
    n = struct.unpack_from("<I", res, 20)[0]
    out = [struct.unpack_from("<QQQ", res, 32 + 56 * i) for i in range(n)]
    assert n and struct.unpack_from("<I", res, 32 + 56 * (n - 1) + 40)[0] & FIEMAP_EXTENT_LAST
    return out


def read_mapped(device, ext, size):
    """The @size bytes of the file mapped by @ext, read from @device."""
    data = bytearray(size)
    with open(device, "rb", buffering=0) as fh:
        for logical, physical, length in ext:
            length = min(length, size - logical)
            data[logical:logical + length] = os.pread(fh.fileno(), length, physical)
    return bytes(data)


def decode(data, b):
    """The sequence number of the write @data of block @b holds, or None
    if it is not one whole write of that block."""
    if data[:8] != MAGIC:
        return None
    blk, seq = struct.unpack("<QQ", data[8:24])
    return seq if blk == b and data == block_bytes(b, seq) else None


def check_image(data, t_start, t_end, writes, flushes, asked="the set was asked for"):
    """What is wrong with the file's bytes @data in a shadow asked for at
    @t_start and returned at @t_end (or in the volume after a crash: every
    write that returned before @t_start there, none issued after @t_end):
    a list of messages, empty if none."""
    by_seq = {w[0]: w for w in writes}
    held = []
    errors = []
    for b in range(NBLOCKS):
        seq = decode(data[b * BLOCK:(b + 1) * BLOCK], b)
        if seq is None:
            errors.append("block %d: not one whole write of it" % b)
        elif seq and (seq not in by_seq or by_seq[seq][1] != b):
            errors.append("block %d: sequence %d was never written there" % (b, seq))
        else:
            held.append(seq)
            if seq and by_seq[seq][2] > t_end:
                errors.append("block %d: write %d was issued %.1f ms after the set "
                              "returned" % (b, seq, (by_seq[seq][2] - t_end) / 1e6))
    if errors:
        return errors
    # The latest flush that ended before a write the shadow holds was issued:
    # every write that returned before it began is there too.
    issued = [by_seq[s][2] for s in held if s]
    latest_issue = max(issued) if issued else 0
    before = [f for f in flushes if f[1] < latest_issue]
    cut = max([f[0] for f in before] + [t_start])   # a flush, or the set's start
    need = [0] * NBLOCKS
    why = [""] * NBLOCKS
    for seq, b, ti, ta in writes:
        if ta < cut and seq > need[b]:
            need[b] = seq
            why[b] = ("returned before " + asked if ta < t_start else
                      "returned before an fdatasync that ended before a write the "
                      "shadow holds was issued")
    for b in range(NBLOCKS):
        if held[b] < need[b]:
            errors.append("block %d: holds write %d, but write %d %s" % (
                b, held[b], need[b], why[b]))
    return errors


def laid_out(vssd):
    """A volume mounted with ext4 holding the file, laid out and synced:
    (mount point, file, its extents)."""
    mnt = os.path.join(vssd.root, "mnt")
    vssd.create_volume("o", "128M")
    vssd.vss("volume", "mount", "o", mnt, "--mkfs", "ext4")
    f = os.path.join(mnt, "f")
    with open(f, "wb") as fh:       # laid out: overwrites change no metadata
        for b in range(NBLOCKS):
            fh.write(block_bytes(b, 0))
        os.fsync(fh.fileno())
    # Where the file's blocks are on the volume: shadows and the volume are
    # read there, so that what is checked is the device's bytes, whatever
    # ext4 in a broken shadow would make of them.  Overwrites never move them.
    ext = extents(f)
    assert sum(e[2] for e in ext) >= NBLOCKS * BLOCK
    return mnt, f, ext


def start_writer(vssd, f, seed):
    w = vssd.spawn([sys.executable, "-c", WRITER, f, str(seed)], stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, text=True)
    assert w.stdout.readline().strip() == "started"
    return w


def writer_log(w, seed):
    """Stops the writer @w once its writes in flight returned: its writes
    (seq, block, issued, returned) and fdatasyncs (began, ended)."""
    if not w.stdin.closed:
        w.stdin.close()
    out = w.stdout.read().split("\n")
    assert w.wait(60) == 0 and "end" in out, "the writer failed (seed %d)" % seed
    writes = [tuple(int(x) for x in l.split()[1:]) for l in out if l.startswith("W ")]
    flushes = [tuple(int(x) for x in l.split()[1:]) for l in out if l.startswith("F ")]
    assert len(writes) > 1000 and flushes, "too little load to test anything"
    return writes, flushes


def test_shadows_never_reorder_writes_across_a_flush(vssd):
    seed = int(os.environ.get("VSS_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    mnt, f, ext = laid_out(vssd)
    w = start_writer(vssd, f, seed)
    sets = []
    try:
        for _ in range(8):
            time.sleep(rng.uniform(0.05, 0.5))
            t_start = time.monotonic_ns()
            sid = vssd.shadow(mnt)["shadows"][0]["id"]
            sets.append((sid, t_start, time.monotonic_ns()))
    finally:
        w.stdin.close()
    writes, flushes = writer_log(w, seed)
    datas = []
    for i, (sid, t_start, t_end) in enumerate(sets):
        data = read_mapped(os.path.join(vssd.run, "dev", "shadows", sid), ext,
                           NBLOCKS * BLOCK)
        errors = check_image(data, t_start, t_end, writes, flushes)
        assert not errors, "shadow %d of %d (seed %d, VSS_TEST_SEED to repeat; %d writes, " \
            "%d fdatasyncs): %d blocks wrong, first: %s" % (
                i + 1, len(sets), seed, len(writes), len(flushes), len(errors),
                "; ".join(errors[:5]))
        datas.append(data)
    # ... and each shadow's ext4 reads the same (it was frozen clean).
    exp = os.path.join(vssd.root, "exp")
    for i, (sid, _, _) in enumerate(sets):
        vssd.vss("expose", sid, exp)
        try:
            with open(os.path.join(exp, "f"), "rb") as fh:
                assert fh.read() == datas[i], "shadow %d: its ext4 reads other bytes " \
                    "than the file's blocks hold" % (i + 1)
        finally:
            vssd.vss("unexpose", exp)


def test_a_crash_never_reorders_writes_across_a_flush(vssd):
    """kill -9 of vssd under the writers, a persistent shadow taken among
    them (its first writes go through the engine's redo queue): the volume
    may lose what no fdatasync covered, as a disk's volatile cache does,
    never a write that returned before an fdatasync began, and never one
    that the writes it holds were ordered after."""
    seed = int(os.environ.get("VSS_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    mnt, f, ext = laid_out(vssd)
    w = start_writer(vssd, f, seed)
    try:
        time.sleep(rng.uniform(0.2, 0.6))
        t_start = time.monotonic_ns()
        sid = vssd.shadow(mnt, persistent=True)["shadows"][0]["id"]
        t_end = time.monotonic_ns()
        time.sleep(rng.uniform(0.5, 1.0))
    finally:
        w.stdin.close()
    writes, flushes = writer_log(w, seed)
    vssd.kill9()
    vssd.start()
    data = read_mapped(vssd.device("o"), ext, NBLOCKS * BLOCK)
    last = max(fl[0] for fl in flushes)
    errors = check_image(data, last, 1 << 63, writes, flushes,
                         asked="the last fdatasync began")
    assert not errors, "the volume after kill -9 (seed %d, VSS_TEST_SEED to repeat; %d " \
        "writes, %d fdatasyncs): %d blocks wrong, first: %s" % (
            seed, len(writes), len(flushes), len(errors), "; ".join(errors[:5]))
    data = read_mapped(os.path.join(vssd.run, "dev", "shadows", sid), ext, NBLOCKS * BLOCK)
    errors = check_image(data, t_start, t_end, writes, flushes)
    assert not errors, "the persistent shadow after kill -9 (seed %d): %d blocks wrong, " \
        "first: %s" % (seed, len(errors), "; ".join(errors[:5]))


def start_volatile_disk(vssd, size):
    """A disk with a volatile write cache (volatile_disk.c) of @size bytes:
    (its file, the file of what a power loss would leave of it, its log of
    fsyncs)."""
    d, mnt = os.path.join(vssd.root, "vdisk"), os.path.join(vssd.root, "vdisk-mnt")
    os.mkdir(d)
    os.mkdir(mnt)
    p = vssd.spawn([VOLATILE_DISK, d, str(size), mnt], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not os.path.ismount(mnt):
        assert p.poll() is None, "vss-test-volatile-disk failed: %s" % p.stderr.read()
        assert time.monotonic() < deadline, "vss-test-volatile-disk did not mount"
        time.sleep(0.02)
    return os.path.join(mnt, "disk"), os.path.join(d, "durable"), os.path.join(d, "fsyncs")


def durable_lacks(durable, pieces):
    """The (offset, bytes) of @pieces that the durable image does not hold."""
    with open(durable, "rb", buffering=0) as fh:
        return [(off, data) for off, data in pieces
                if os.pread(fh.fileno(), len(data), off) != data]


def fsyncs(log):
    with open(log) as fh:
        return fh.read().count("\n")


def test_a_returned_flush_is_durable_in_the_origin(vssd):
    """An fsync that returned, of the raw volume (a direct open) and of a
    file on ext4 on it (the loop device and the FUSE writeback cache), is
    in what a power loss of the host would leave of the origin: the
    engine's flush fdatasyncs it."""
    size = 64 << 20
    disk, durable, log = start_volatile_disk(vssd, size)
    mnt = os.path.join(vssd.root, "mnt")
    vssd.vss("volume", "create", "v", "--backing", disk)
    rng = random.Random()
    mounted = False
    try:
        # The raw volume: writes that returned are held by the disk's cache
        # (else nothing here could fail) until the fsync.
        pieces = [(b * BLOCK, rng.randbytes(BLOCK))
                  for b in rng.sample(range(size // BLOCK), 16)]
        fd = os.open(vssd.device("v"), os.O_RDWR | os.O_DIRECT)
        try:
            buf = mmap.mmap(-1, BLOCK)
            for off, data in pieces:
                buf[:] = data
                assert os.pwrite(fd, buf, off) == BLOCK
            assert durable_lacks(durable, pieces) == pieces, \
                "the disk made writes durable before any flush: it tests nothing"
            n = fsyncs(log)
            os.fsync(fd)
        finally:
            os.close(fd)
        lost = durable_lacks(durable, pieces)
        assert not lost, "an fsync of the raw volume returned, yet %d of %d blocks " \
            "written before it are not durable in the origin (first at byte %d; the " \
            "origin was fsynced %d times meanwhile)" % (
                len(lost), len(pieces), lost[0][0], fsyncs(log) - n)
        # ext4 on the volume: a file fsynced is durable where ext4 put it.
        vssd.vss("volume", "mount", "v", mnt, "--mkfs", "ext4")
        mounted = True
        f = os.path.join(mnt, "f")
        data = rng.randbytes(64 * BLOCK)
        with open(f, "wb") as fh:
            fh.write(data)
            fh.flush()
            ext = extents(f)
            pieces = []
            for logical, physical, length in ext:
                length = min(length, len(data) - logical)
                pieces += [(physical + o, data[logical + o:logical + o + BLOCK])
                           for o in range(0, length, BLOCK)]
            assert sum(len(p) for _, p in pieces) == len(data)
            n = fsyncs(log)
            os.fsync(fh.fileno())
        lost = durable_lacks(durable, pieces)
        assert not lost, "an fsync of a file on ext4 on the volume returned, yet %d of " \
            "its %d blocks are not durable in the origin (first at byte %d; the origin " \
            "was fsynced %d times meanwhile)" % (len(lost), len(pieces), lost[0][0],
                                                 fsyncs(log) - n)
    finally:
        if mounted:
            vssd.vss("volume", "umount", "v", check=False)
        vssd.vss("volume", "delete", "v", check=False)
        vssd.stop()
        subprocess.run(["umount", os.path.dirname(disk)], capture_output=True)
