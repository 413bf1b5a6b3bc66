#!/usr/bin/python3
"""bench-versions: how long `vss versions` takes over many shadows.

Makes a volume with a filesystem on it, under vssd: the built-in engine
(ext4 on a vss volume; its shadows are exposed where vssd picks the first
time they are read) or btrfs (a loop-mounted image, a subvolume; its
snapshots are read in place); writes a file, and takes --shadows shadows
(default 512), rewriting the file before every --every'th (default 32), so
that --shadows / --every versions differ.  Then times `vss versions FILE`:
once cold (the engine's shadows exposed by that call, but those equal to
a newer one), then --runs times
warm, and checks that it listed exactly the versions that differ.  The goal
is under one second for 512 shadows.  Not a test: exits 0 whatever the
figures, 1 if the listing is wrong.

With --compare (engine only), before and after in one run: first the
listing with `--read direct` (the ext4 shadows read from their devices
by libext2fs, none mounted), cold and --runs times more, then with
`--read mount` (each shadow exposed and mounted, as before), cold and
warm; both checked against the shadows taken, and against each other.
`--every 1 --compare` is the case where the file differs in every shadow.

    sudo scripts/bench-versions.py [--build build] [--provider engine|btrfs]
                                   [--fs ext4|xfs] [--shadows 512] [--every 32]
                                   [--runs 3] [--compare]

--fs: the filesystem made on the engine's volume (default ext4); xfs
shadows are always read through mounts (no reader reads xfs).

Needs root and /dev/fuse (btrfs: mkfs.btrfs).  Works in a private directory
under /var/tmp (--dir) and removes everything it made, also on failure.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("bench_image",
                                               os.path.join(HERE, "bench-image.py"))
bench_image = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_image)


def cpu(pid):
    """Seconds of CPU a process and its reaped children used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
        os.fsync(f.fileno())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--provider", default="engine", choices=["engine", "btrfs"])
    ap.add_argument("--fs", default="ext4", choices=["ext4", "xfs"],
                    help="the filesystem on the engine's volume")
    ap.add_argument("--shadows", default=512, type=int)
    ap.add_argument("--every", default=32, type=int)
    ap.add_argument("--runs", default=3, type=int)
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--compare", action="store_true",
                    help="--read direct, then --read mount, in one run (engine)")
    a = ap.parse_args()
    if a.compare and a.provider != "engine":
        ap.error("--compare is for the engine's shadows")
    root = tempfile.mkdtemp(prefix="vss-bench-versions-", dir=a.dir)
    d = None
    img_mnt = None
    try:
        d = bench_image.Vssd(os.path.abspath(a.build), root)
        if a.provider == "engine":
            d.vss("volume", "create", "vol", "--size", "512M")
            mnt = os.path.join(root, "mnt")
            d.vss("volume", "mount", "vol", mnt, "--mkfs", a.fs)
            target = mnt
        else:
            img, img_mnt = os.path.join(root, "bt.img"), os.path.join(root, "bt")
            with open(img, "wb") as f:
                f.truncate(1 << 30)
            subprocess.run(["mkfs.btrfs", "-q", "-f", img], check=True)
            os.mkdir(img_mnt)
            subprocess.run(["mount", "-o", "loop", img, img_mnt], check=True)
            target = os.path.join(img_mnt, "sub")
            subprocess.run(["btrfs", "subvolume", "create", target], check=True,
                           capture_output=True)
        f = os.path.join(target, "file")
        want = []
        t0 = time.monotonic()
        for i in range(a.shadows):
            if i % a.every == 0:
                write(f, b"version %d\n" % i * 100)
            out = json.loads(d.vss("create", "shadow", "--for", target, "--no-writers",
                                   "--json").stdout)
            if i % a.every == a.every - 1 or i == a.shadows - 1:
                want.append(out["shadows"][0]["id"])
        made = time.monotonic() - t0
        write(f, b"live\n")
        want.reverse()
        print("%s%s: %d shadows taken in %.1f s; %d versions differ" % (
            a.provider, " (%s)" % a.fs if a.provider == "engine" else "", a.shadows, made,
            len(want)))
        listings = {}
        for how in (["direct", "mount"] if a.compare else ["auto"]):
            times, cpus = [], []
            for r in range(1 + a.runs):
                c0, t0 = cpu(d.proc.pid), time.monotonic()
                res = json.loads(d.vss("versions", f, "--json", "--read", how).stdout)
                times.append(time.monotonic() - t0)
                cpus.append(cpu(d.proc.pid) - c0)
                got = res["versions"]
                if [v["shadow"] for v in got] != want or res.get("unreadable"):
                    print("bench-versions: --read %s listed %d versions, expected %d; "
                          "unreadable: %s" % (how, len(got), len(want), res.get("unreadable")))
                    return 1
            listings[how] = got
            if how != "mount":
                best_times = times
            print("vss versions --read %s: cold %.3f s; warm %s s (CPU of vssd and its "
                  "children: %s s); load %.1f" % (
                      how, times[0], ", ".join("%.3f" % t for t in times[1:]),
                      ", ".join("%.2f" % c for c in cpus), os.getloadavg()[0]))
        if a.compare and listings["direct"] != listings["mount"]:
            print("bench-versions: --read direct and --read mount differ")
            return 1
        # Any request under vssd's lock first checks every mount it made:
        # with the shadows exposed, what that costs.  The engine's shadows
        # equal to a newer one are not exposed at all.
        exposed = sum(1 for s in json.loads(d.vss("list", "shadows", "--json").stdout)
                      ["shadows"] if s["exposed"])
        t0 = time.monotonic()
        d.vss("volume", "list")
        print("vss volume list with %d shadows exposed: %.3f s" % (
            exposed, time.monotonic() - t0))
        times = best_times
        best = min(times[1:]) if a.runs else times[0]
        print("goal: under 1 s for %d shadows%s: warm %.3f s %s, cold %.3f s %s" % (
            a.shadows, " (--read direct)" if a.compare else "", best, "PASS" if best < 1 else "MISS", times[0],
            "PASS" if times[0] < 1 else "MISS"))
    finally:
        if d:
            d.vss("delete", "shadows", "--all", "--quiet", check=False)
        if img_mnt:
            subprocess.run(["umount", img_mnt], capture_output=True)
        bench_image.remove_all(d, root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
