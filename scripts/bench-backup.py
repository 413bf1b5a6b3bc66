#!/usr/bin/python3
"""bench-backup: what a file-level incremental backup costs against rsync and restic.

On an ext4 vss volume, a tree of --files small files (1 to 8 KiB, in
directories of 100) is backed up in full three ways: `vss backup create`
into a repository (from a shadow copy set, no writers), `rsync -a` to a
copy on the same filesystem as the repository, and `restic backup` into a
restic repository. Then, --rounds times: 1% of the files are rewritten
(new random bytes, same size) and each tool takes an incremental of the
same change, one after the other, timed (vss: `--type incremental`, set
taken and deleted included; rsync: `rsync -a --delete` onto the up-to-date
copy; restic: a backup whose parent is the previous snapshot). Prints the
seconds of each and the ratios vss/rsync and vss/restic per round.  vssd
lets the shadow's filesystem go and deletes the shadow after `vss` has
returned (shadow.delete's "detach"): that is waited for, untimed, before
rsync starts (so that it does not share the CPU with it), and printed as
"after s" (the seconds from vss's return until its loop device is gone)
and "vssd ms" (the CPU vssd's threads took meanwhile, user and system,
from their /proc/PID/task/*/schedstat: mostly the kernel's teardown of the
shadow's filesystem, which happens in vssd's thread that lets it go).

    sudo scripts/bench-backup.py [--build build] [--files 100000] [--rounds 3]
                                 [--compare OTHER_BUILD]

--compare measures a second build's `vss` in the same run: each round then
makes two changes, one for each build (which goes first alternates), each
followed by that build's incremental and by rsync's and restic's of the
same change (vssd is --build's).

Needs root, rsync and restic. Works in a private temporary directory (--dir
to choose where) and removes everything it made, also on failure or ^C.
Not a test: it exits 0 whatever the figures.
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(*cmd, **kw):
    kw.setdefault("check", True)
    kw.setdefault("capture_output", True)
    return subprocess.run([str(c) for c in cmd], **kw)


def timed(*cmd, env=None):
    t = time.monotonic()
    run(*cmd, env=env)
    return time.monotonic() - t


def wait_released(run_dir, limit=60):
    """Seconds until no loop device reads a shadow of vssd's (RUN/dev/shadows)."""
    t = time.monotonic()
    prefix = os.path.join(run_dir, "dev", "shadows") + "/"
    while time.monotonic() - t < limit:
        busy = False
        for name in os.listdir("/sys/block"):
            try:
                with open("/sys/block/%s/loop/backing_file" % name) as f:
                    busy |= f.read().startswith(prefix)
            except OSError:
                pass
        if not busy:
            break
        time.sleep(0.01)
    return time.monotonic() - t


def cpu_ns(pid):
    """CPU time of every thread of @pid so far (ns, user and system)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError):
            pass
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--dir", default=None, help="where to work (default: /var/tmp)")
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--volume", default="4G", help="size of the vss volume")
    ap.add_argument("--compare", default=None,
                    help="a second build whose vss takes every other incremental")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-backup: needs root")
    for tool in ("rsync", "restic"):
        if not shutil.which(tool):
            sys.exit("bench-backup: needs %s" % tool)
    build = os.path.abspath(args.build)
    vssd = os.path.join(build, "src", "vssd", "vssd")
    vss = os.path.join(build, "src", "vss", "vss")
    builds = [("this", vss)]
    if args.compare:
        builds.append(("other", os.path.join(os.path.abspath(args.compare), "src", "vss",
                                             "vss")))
    work = tempfile.mkdtemp(prefix="vss-bench-", dir=args.dir or "/var/tmp")
    run_dir, state = os.path.join(work, "run"), os.path.join(work, "state")
    mnt = os.path.join(work, "mnt")
    repo, copy, rrepo = (os.path.join(work, n) for n in ("repo", "copy", "restic"))
    env = dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_REPOSITORY=rrepo,
               RESTIC_CACHE_DIR=os.path.join(work, "restic-cache"))
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    log = open(os.path.join(work, "vssd.log"), "w")
    p = subprocess.Popen([vssd, "--run-dir", run_dir, "--state-dir", state],
                         stdout=log, stderr=log)
    mounted = False

    def v(*a, **kw):
        return run(vss, "--run-dir", run_dir, *a, **kw)

    try:
        for _ in range(200):
            if v("status", check=False).returncode == 0:
                break
            time.sleep(0.05)
        v("volume", "create", "bench", "--size", args.volume)
        v("volume", "mount", "bench", mnt, "--mkfs", "ext4")
        mounted = True
        rng = random.Random(1)
        tree = os.path.join(mnt, "tree")
        files = []
        for i in range(args.files):
            d = os.path.join(tree, "d%04d" % (i // 100))
            if i % 100 == 0:
                os.makedirs(d)
            f = os.path.join(d, "f%06d" % i)
            with open(f, "wb") as fh:
                fh.write(rng.randbytes(rng.randint(1024, 8192)))
            files.append(f)
        run("sync")
        run("restic", "init", env=env)
        full = {
            "vss": timed(vss, "--run-dir", run_dir, "backup", "create", "--to", repo,
                         "--for", tree, "--no-writers", "--quiet"),
            "rsync": timed("rsync", "-a", "--delete", tree + "/", copy + "/"),
            "restic": timed("restic", "backup", "--quiet", tree, env=env),
        }
        print("full backup of %d files: vss %.2f s, rsync %.2f s, restic %.2f s" % (
            args.files, full["vss"], full["rsync"], full["restic"]))
        print("%-6s %-6s %10s %8s %8s %10s %10s %12s %12s" % (
            "round", "build", "vss s", "after s", "vssd ms", "rsync s", "restic s",
            "vss/rsync", "vss/restic"))
        for r in range(args.rounds):
            for name, binary in builds[r % 2:] + builds[:r % 2]:
                for f in rng.sample(files, max(1, args.files // 100)):
                    size = os.path.getsize(f)
                    with open(f, "wb") as fh:
                        fh.write(rng.randbytes(size))
                run("sync")
                t_vss = timed(binary, "--run-dir", run_dir, "backup", "create", "--to", repo,
                              "--for", tree, "--type", "incremental", "--no-writers",
                              "--quiet")
                c_after = cpu_ns(p.pid)
                t_after = wait_released(run_dir)
                c_after = (cpu_ns(p.pid) - c_after) / 1e6
                t_rsync = timed("rsync", "-a", "--delete", tree + "/", copy + "/")
                t_restic = timed("restic", "backup", "--quiet", tree, env=env)
                print("%-6d %-6s %10.2f %8.2f %8.0f %10.2f %10.2f %12.2f %12.2f (load %.1f)" % (
                    r + 1, name, t_vss, t_after, c_after, t_rsync, t_restic,
                    t_vss / t_rsync, t_vss / t_restic, os.getloadavg()[0]), flush=True)
    finally:
        if mounted:
            v("volume", "umount", "bench", check=False)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
