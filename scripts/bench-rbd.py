#!/usr/bin/python3
"""bench-rbd: RBD volumes through vss against Ceph's own peers, and the cost
of RBD group snapshots.

Starts a single-node Ceph cluster (tests/system/ceph_cluster.py: one
monitor, one memstore OSD, everything under a private directory), then:

1. random 4 KiB writes (fio, libaio, direct, --iodepth, --runtime seconds)
   to a file on ext4 on an RBD image served as a vss volume (vssd, FUSE,
   loop device); the same on ext4 on the same kind of image through
   rbd-fuse (Debian's rbd-fuse package) if installed, and rbd-nbd if
   installed and the nbd module loads; and `rbd bench` random 4 KiB
   writes straight through librbd, the cluster's own figure;
2. the time of one `rbd group snap create` over groups of 1 and 16
   images, and of a vss set over 1 and 16 RBD volumes (writes held).

Prints the figures; not a test: exits 0 whatever they are.

    sudo scripts/bench-rbd.py [--build build/dev] [--runtime 20] [--iodepth 16]

Needs root, /dev/fuse, ceph-mon, ceph-osd, ceph-common, fio.  Removes
everything it made, also on failure or Ctrl-C.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
from ceph_cluster import CephCluster, missing_binaries  # noqa: E402

POOL = "bench"


def fio(path, runtime, iodepth, size="192M"):
    r = subprocess.run(["fio", "--name=rw", "--filename=" + path, "--size=" + size,
                        "--rw=randwrite", "--bs=4k", "--direct=1", "--ioengine=libaio",
                        "--iodepth=%d" % iodepth, "--time_based", "--runtime=%d" % runtime,
                        "--ramp_time=2", "--output-format=json"],
                       capture_output=True, text=True, check=True)
    job = json.loads(r.stdout)["jobs"][0]["write"]
    return job["iops"], job["clat_ns"]["mean"] / 1000.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build", "dev"))
    ap.add_argument("--runtime", type=int, default=20)
    ap.add_argument("--iodepth", type=int, default=16)
    a = ap.parse_args()
    if os.geteuid() != 0 or missing_binaries() or not shutil.which("fio"):
        sys.exit("bench-rbd: needs root, fio and %s" % " ".join(missing_binaries() or ["ceph"]))
    vssd_bin = os.path.abspath(os.path.join(a.build, "src", "vssd", "vssd"))
    vss_bin = os.path.abspath(os.path.join(a.build, "src", "vss", "vss"))
    root = tempfile.mkdtemp(prefix="vss-bench-rbd-", dir="/var/tmp")
    ceph = CephCluster(root=os.path.join(root, "ceph"), memstore_mb=2048)
    run = os.path.join(root, "run")
    vssd = None
    mounts, loops, helpers = [], [], []

    def vss(*args):
        return subprocess.run([vss_bin, "--run-dir", run] + list(args), capture_output=True,
                              text=True, check=True).stdout

    try:
        t = time.time()
        ceph.start()
        ceph.create_pool(POOL)
        print("cluster up in %.1f s" % (time.time() - t))
        log = open(os.path.join(root, "vssd.log"), "wb")
        vssd = subprocess.Popen([vssd_bin, "--state-dir", os.path.join(root, "state"),
                                 "--run-dir", run, "--ceph-conf", ceph.conf],
                                stdout=log, stderr=log)
        for _ in range(100):
            if subprocess.run([vss_bin, "--run-dir", run, "status"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        # 1. random 4 KiB writes
        vss("volume", "create", "v", "--rbd", POOL + "/v", "--size", "512M")
        mnt = os.path.join(root, "mnt")
        vss("volume", "mount", "v", mnt, "--mkfs", "ext4")
        mounts.append(mnt)
        iops, lat = fio(os.path.join(mnt, "f"), a.runtime, a.iodepth)
        print("ext4 on RBD via vss:      %8.0f IOPS, mean completion %.0f us" % (iops, lat))
        vss("volume", "umount", "v")
        mounts.remove(mnt)
        if shutil.which("rbd-fuse"):
            ceph.rbd("create", "--size", "512M", POOL + "/f")
            fm = os.path.join(root, "rbdfuse")
            os.makedirs(fm)
            helpers.append(subprocess.Popen(["rbd-fuse", "-c", ceph.conf, "-p", POOL, "-f",
                                             fm], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
            for _ in range(100):
                if os.path.exists(os.path.join(fm, "f")):
                    break
                time.sleep(0.1)
            mounts.append(fm)
            loop = subprocess.run(["losetup", "-f", "--show", os.path.join(fm, "f")],
                                  capture_output=True, text=True, check=True).stdout.strip()
            loops.append(loop)
            subprocess.run(["mkfs.ext4", "-q", loop], check=True)
            em = os.path.join(root, "fmnt")
            os.makedirs(em)
            subprocess.run(["mount", loop, em], check=True)
            mounts.append(em)
            iops, lat = fio(os.path.join(em, "f"), a.runtime, a.iodepth)
            print("ext4 on RBD via rbd-fuse: %8.0f IOPS, mean completion %.0f us" % (iops, lat))
            subprocess.run(["umount", em], check=True)
            mounts.remove(em)
            subprocess.run(["losetup", "-d", loop], check=True)
            loops.remove(loop)
        else:
            print("rbd-fuse: not installed (Debian: rbd-fuse), skipped")
        ceph.rbd("create", "--size", "512M", POOL + "/b")
        r = ceph.rbd("bench", "--io-type", "write", "--io-pattern", "rand", "--io-size", "4K",
                     "--io-threads", str(a.iodepth), "--io-total", "256M", POOL + "/b",
                     timeout=600)
        last = [l for l in r.stdout.splitlines() if l.startswith("elapsed")]
        print("rbd bench (librbd, no fs): %s" % (last[0] if last else r.stdout[-200:]))
        # 2. group snapshots of 1 and 16 images
        for n in (1, 16):
            g = "g%d" % n
            ceph.rbd("group", "create", POOL + "/" + g)
            for i in range(n):
                ceph.rbd("create", "--size", "64M", "%s/%s-%d" % (POOL, g, i))
                ceph.rbd("group", "image", "add", POOL + "/" + g, "%s/%s-%d" % (POOL, g, i))
            t = time.time()
            ceph.rbd("group", "snap", "create", "%s/%s@s" % (POOL, g))
            print("rbd group snap create, %2d image%s: %.2f s (the rbd command)" % (
                n, "" if n == 1 else "s", time.time() - t))
            ceph.rbd("group", "rm", POOL + "/" + g)
        for n in (1, 16):
            names = ["s%d-%d" % (n, i) for i in range(n)]
            for v in names:
                vss("volume", "create", v, "--rbd", "%s/%s" % (POOL, v), "--size", "64M")
            args = ["create", "shadow", "--json"]
            for v in names:
                args += ["--for", v]
            t = time.time()
            s = json.loads(vss(*args))
            print("vss set over %2d RBD volume%s: %.2f s, writes held %.0f ms" % (
                n, "" if n == 1 else "s", time.time() - t, s.get("held_ms", -1)))
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)
        # The loop device on rbd-fuse's file goes by its name: once that
        # mount is gone its backing file reads "/f", which the root check
        # below does not match.
        for dev in loops:
            subprocess.run(["losetup", "-d", dev], capture_output=True)
        for p in helpers:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if vssd:
            vssd.send_signal(signal.SIGTERM)
            try:
                vssd.wait(30)
            except subprocess.TimeoutExpired:
                vssd.kill()
        out = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if root in line:
                subprocess.run(["losetup", "-d", line.split(":")[0]], capture_output=True)
        ceph.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
