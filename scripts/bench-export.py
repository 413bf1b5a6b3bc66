#!/usr/bin/python3
"""bench-export: what reading a shadow over NBD costs, with and without a
changed-block map (`vss export --changed-since`, qemu-storage-daemon in
front of nbdkit).

Makes a vss volume of --size (default 1 GiB, 16 KiB blocks) on a backing
file full of random bytes, under vssd; a shadow A; random bytes over
--changed (default 1%) of the blocks; a shadow B.  Then reads B whole with
`nbdcopy URI null:` from an export without a map (nbdkit alone) and from
one with --changed-since A (qemu over nbdkit), and pulls only the dirty
extents of qemu:dirty-bitmap:A with libnbd's Python binding.  Page caches
are warm (the figures are the servers' cost, not the disk's).  Prints
times and MiB/s; not a test: exits 0 whatever the figures.

    sudo scripts/bench-export.py [--build build/dev] [--size 1G] [--changed 0.01]

Needs root, /dev/fuse, nbdkit, qemu-storage-daemon, nbdcopy, python3-libnbd.
Works in a private directory under /var/tmp and removes everything it made.
"""
import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import nbd

HERE = os.path.dirname(os.path.abspath(__file__))
BS = 16384
_spec = importlib.util.spec_from_file_location("bench_image",
                                               os.path.join(HERE, "bench-image.py"))
bench_image = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_image)


def full_read(uri):
    t0 = time.monotonic()
    subprocess.run(["nbdcopy", uri, "null:"], check=True)
    return time.monotonic() - t0


def dirty_pull(uri, ctx):
    """Reads what @ctx marks dirty; (seconds, bytes read)."""
    t0 = time.monotonic()
    h = nbd.NBD()
    h.add_meta_context(ctx)
    h.connect_uri(uri)
    size, off, got = h.get_size(), 0, 0
    while off < size:
        found = []
        h.block_status(min(size - off, 1 << 30), off,
                       lambda meta, o, e, err: found.extend(e) if meta == ctx else None)
        for i in range(0, len(found), 2):
            if found[i + 1] & 1:
                got += len(h.pread(found[i], off))
            off += found[i]
    h.shutdown()
    return time.monotonic() - t0, got


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build", "dev"))
    ap.add_argument("--size", default="1G", type=bench_image.size_arg)
    ap.add_argument("--changed", default=0.01, type=float)
    ap.add_argument("--dir", default="/var/tmp")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="vss-bench-export-", dir=a.dir)
    d = None
    try:
        d = bench_image.random_volume(a.build, root, a.size)[0]
        sa = json.loads(d.vss("create", "shadow", "--for", "vol", "--json").stdout)
        sa = sa["shadows"][0]["id"]
        rng = random.Random(1)
        blocks = rng.sample(range(a.size // BS), int(a.size // BS * a.changed))
        fd = os.open(os.path.join(d.run, "dev", "volumes", "vol"), os.O_WRONLY)
        for b in blocks:
            os.pwrite(fd, rng.randbytes(BS), b * BS)
        os.fsync(fd)
        os.close(fd)
        sb = json.loads(d.vss("create", "shadow", "--for", "vol", "--json").stdout)
        sb = sb["shadows"][0]["id"]
        sock = os.path.join(root, "plain.sock")
        d.vss("export", sb, "--socket", sock)
        plain = "nbd+unix:///?socket=" + sock
        full_read(plain)                        # warm the caches
        t_plain = full_read(plain)
        d.vss("unexport", sb)
        x = json.loads(d.vss("export", sb, "--changed-since", sa, "--json").stdout)
        mapped = "nbd+unix:///?socket=" + x["socket"]
        t_map = full_read(mapped)
        t_dirty, got = dirty_pull(mapped, x["metadata_context"])
        mib = a.size / (1 << 20)
        print("full read, nbdkit alone:          %6.2f s  %7.1f MiB/s" % (t_plain,
                                                                          mib / t_plain))
        print("full read, qemu over nbdkit:      %6.2f s  %7.1f MiB/s" % (t_map, mib / t_map))
        print("dirty extents only (%d blocks):  %6.2f s  %d MiB read, %.1f%% of the "
              "full read's time" % (len(blocks), t_dirty, got >> 20, 100 * t_dirty / t_map))
        assert got == len(set(blocks)) * BS, (got, len(set(blocks)) * BS)
    finally:
        bench_image.remove_all(d, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
