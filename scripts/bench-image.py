#!/usr/bin/python3
"""bench-image: what an incremental image backup reads and costs.

Makes a vss volume of --size (default 4 GiB, 16 KiB blocks) on a backing
file full of random bytes, under vssd (FUSE device); takes a full image
backup (`vss backup create --image`) into a repository beside it; then,
--rounds times, writes random bytes over --changed (default 1%) of the
volume's blocks, chosen at random, and takes an incremental.  Before each
backup the backing file's and the diff area's pages are dropped from the
page cache (POSIX_FADV_DONTNEED on those files only: nothing else on the
machine is touched).  Prints each backup's time and bytes read, then the
targets: an incremental reads at most 2% of the volume and takes at most
5% of the full's time.  Not a test: exits 0 whatever the figures.

    sudo scripts/bench-image.py [--build build-bench] [--size 4G] [--changed 0.01]

Needs root and /dev/fuse.  Works in a private directory under /var/tmp
(--dir to choose where: a disk, not tmpfs) and removes everything it made,
also on failure or Ctrl-C.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BS = 16384


def size_arg(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return int(s[:-1]) * mult[s[-1].upper()] if s[-1].upper() in mult else int(s)


def drop_cache(*paths):
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class Vssd:
    def __init__(self, build, root):
        self.vss_bin = os.path.join(build, "src", "vss", "vss")
        self.root = root
        self.run = os.path.join(root, "run")
        self.state = os.path.join(root, "state")
        log = open(os.path.join(root, "vssd.log"), "ab")
        self.proc = subprocess.Popen([os.path.join(build, "src", "vssd", "vssd"),
                                      "--state-dir", self.state, "--run-dir", self.run],
                                     stdout=log, stderr=log)
        log.close()
        for _ in range(300):
            if self.vss("status", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise SystemExit("bench-image: vssd did not start")

    def vss(self, *args, check=True):
        r = subprocess.run([self.vss_bin, "--run-dir", self.run] + list(args),
                           capture_output=True, text=True)
        if check and r.returncode:
            raise SystemExit("bench-image: vss %s: %s" % (" ".join(args), r.stderr.strip()))
        return r

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def remove_all(d, root):
    """Stops vssd (if it started), unmounts what is left under @root
    (innermost first) and removes it."""
    if d:
        d.stop()
    for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
        mnt = line.split()[4]
        if mnt.startswith(root + "/"):
            subprocess.run(["umount", "-l", mnt], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def random_volume(build, root, size):
    """vssd under @root, with volume "vol" of @size random bytes (16 KiB
    blocks) on ROOT/backing.img: (the Vssd, the backing file's path)."""
    backing = os.path.join(root, "backing.img")
    subprocess.run(["sh", "-c", "head -c %d /dev/urandom > %s" % (size, backing)], check=True)
    d = Vssd(os.path.abspath(build), root)
    try:
        d.vss("volume", "create", "vol", "--backing", backing, "--block-size", str(BS))
    except BaseException:
        d.stop()                # the caller's cleanup never saw it
        raise
    return d, backing


def backup(d, repo, typ, backing, diff):
    drop_cache(backing, diff)
    t0 = time.monotonic()
    out = json.loads(d.vss("backup", "create", "--image", "--to", repo, "--for", "vol",
                           "--type", typ, "--no-writers", "--json").stdout)
    return time.monotonic() - t0, out["backups"][0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build-bench"))
    ap.add_argument("--size", default="4G", type=size_arg)
    ap.add_argument("--changed", default=0.01, type=float)
    ap.add_argument("--rounds", default=3, type=int)
    ap.add_argument("--dir", default="/var/tmp")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="vss-bench-image-", dir=a.dir)
    d = None
    try:
        d, backing = random_volume(a.build, root, a.size)
        vol = json.loads(d.vss("volume", "list", "--json").stdout)["volumes"][0]
        diff = vol["diff_area"]
        repo = os.path.join(root, "repo")
        t_full, full = backup(d, repo, "full", backing, diff)
        print("full:        %7.2f s, read %d MiB (%d MiB/s)" % (
            t_full, full["bytes_read"] >> 20, full["bytes_read"] / t_full / (1 << 20)))
        rng = random.Random(1)
        nblocks = a.size // BS
        rows = []
        for r in range(a.rounds):
            blocks = rng.sample(range(nblocks), int(nblocks * a.changed))
            fd = os.open(os.path.join(d.run, "dev", "volumes", "vol"), os.O_WRONLY)
            for b in blocks:
                os.pwrite(fd, rng.randbytes(BS), b * BS)
            os.fsync(fd)
            os.close(fd)
            t, inc = backup(d, repo, "incremental", backing, diff)
            assert inc["type"] == "incremental", inc
            rows.append((t, inc["bytes_read"]))
            print("incremental: %7.2f s, read %d MiB (%.2f%% of the volume; %d blocks "
                  "written), %.2f%% of the full's time" % (
                      t, inc["bytes_read"] >> 20, 100.0 * inc["bytes_read"] / a.size,
                      len(blocks), 100.0 * t / t_full))
        worst_read = max(b for _, b in rows) / a.size
        worst_time = max(t for t, _ in rows) / t_full
        print("target: an incremental reads at most 2%% of the volume: %.2f%% %s" % (
            100 * worst_read, "PASS" if worst_read <= 0.02 else "MISS"))
        print("target: an incremental takes at most 5%% of the full's time: %.2f%% %s" % (
            100 * worst_time, "PASS" if worst_time <= 0.05 else "MISS"))
    finally:
        remove_all(d, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
