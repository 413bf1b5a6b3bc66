#!/usr/bin/python3
"""bench-fio: what a shadow copy costs a filesystem's random writes.

Runs fio (random 4 KiB writes, direct I/O, libaio, iodepth 16, end_fsync=1;
IOPS are the writes over the wall time of the run, final fsync included)
on ext4 over
  1. a vss volume (vssd, FUSE device, loop device): no shadow, 1 shadow,
     64 shadows, the newest of them alone (the 63 others deleted: the
     64-vs-1 of two adjacent runs), then 1 persistent shadow;
  2. a plain file on a loop device (no FUSE, no engine): the floor; then a
     file in RAM (tmpfs) on a buffered loop device: the "ceiling", what the
     loop driver does with no storage behind it (a single run of any stack
     may land above or below it by the run-to-run spread; `--no-ceiling`
     leaves it out);
  3. qemu-storage-daemon exporting a qcow2 image through FUSE, then with
     1 and 64 external snapshots (QMP blockdev-snapshot-sync).
and prints IOPS with ratios to each stack's own no-snapshot run and to the
plain loop device; then sequential 1 MiB direct writes (iodepth 4,
end_fsync=1, MiB/s over the wall time) on each stack with one shadow
(snapshot) and on the plain loop device.  Then the random writes again in
`--rounds` rounds (3; 0 for none) that go round the plain loop file, the
loop on RAM and the vss volume with one shadow, with the medians of the
rounds' ratios: a single row above landed a fifth above or below the next
run of the same stack on the test VM (6-8% with page reporting down,
below).  Under the vss volume's random
writes it takes sets one after another and prints the freeze time's median,
p99 and maximum, and the median and p99 of each step of those sets as
vssd's log gives them (settle, guardian, second settle, FIFREEZE, commit,
thaw, what the kernel wrote back and the engine's flushes in the freeze;
`--freezes-only` does only this part, and freezes ext4 on the plain loop
file under the same load in turn with the sets (each fio runs only in its
turn), the floor the filesystem sets: `--no-floor` leaves that out;
`--log` keeps the log).
Then it reads: the file (sequential 1 MiB direct reads) from the live
volume and from two exposed shadows, one with about a quarter of the
file's blocks copied since it was taken and one with about 3%, each
cold (every cache dropped first: `drop_caches`) and warm (the engine's files
in the page cache), with ratios to the live volume; `--reads` does only
this part.  Between two of the 64 shadows (snapshots) a burst of
8 MiB of random writes lands, so that each owns copies of its own.  Every run first lays the test file out and warms up, so
that the runs differ only in what is measured.

    sudo scripts/bench-fio.py [--build build] [--runtime 20] [--size 1G] [--reads]
                              [--no-reads] [--freezes 40] [--read-passes 5]
                              [--freezes-only] [--no-floor] [--no-ceiling] [--log FILE]
                              [--rounds 3] [--count] [--keep-page-reporting]

In a guest with free page reporting (virtio-balloon), the run turns it
down (page_reporting_order at the kernel's highest) and gives the setting
back at the end: with it, a run's result moved by about a fifth with where
its page cache landed (`--keep-page-reporting` leaves it as it is).

`--count` also prints, for the random and the sequential run with one
shadow, the FUSE requests vssd got (opcode and length) and its preads
and pwrites by size, counted with perf's tracepoints (not timed: load
does not change them).

Needs root, fio, mkfs.ext4, losetup, qemu-img and qemu-storage-daemon (the
qemu rows are skipped without them).  Works in a private temporary
directory (--dir to choose where) and removes everything it made, also on
failure or Ctrl-C.
"""
import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(*cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run([str(c) for c in cmd], **kw)


class Count:
    """`--count`: what vssd was asked and did during one measured fio run,
    counted by the kernel's tracepoints (perf), whatever the load: the
    FUSE requests of vssd's own connection by opcode and size, and vssd's
    pread/pwrite calls by size."""

    EVENTS = ("fuse:fuse_request_send", "syscalls:sys_enter_pwrite64",
              "syscalls:sys_enter_pread64")

    def __init__(self, work, pid, conn, what):
        self.data = os.path.join(work, "count.data")
        self.pid, self.conn, self.what = str(pid), conn, what

    def __enter__(self):
        cmd = ["perf", "record", "-q", "-a", "-o", self.data]
        for e in self.EVENTS:
            cmd += ["-e", e]
        self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)       # perf is recording
        return self

    def __exit__(self, *exc):
        self.p.send_signal(signal.SIGINT)
        self.p.wait()
        out = run("perf", "script", "-i", self.data, "-F", "pid,event,trace",
                  capture_output=True, text=True, check=False).stdout
        os.unlink(self.data)
        counts = {}
        for line in out.splitlines():
            m = re.search(r"connection (\d+) req \d+ opcode \d+ \((\w+)\) len (\d+)", line)
            if m:
                if int(m.group(1)) == self.conn:
                    # len is the request's: its headers (80 bytes for a
                    # write) and, for a write, the data
                    k = (m.group(2), int(m.group(3)))
                    counts[k] = counts.get(k, 0) + 1
                continue
            m = re.match(r"\s*(\d+)\s+syscalls:sys_enter_(pread64|pwrite64):.*count: (0x[0-9a-f]+)",
                         line)
            if m and m.group(1) == self.pid:
                k = ("vssd " + m.group(2), int(m.group(3), 16))
                counts[k] = counts.get(k, 0) + 1
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:12]
        print("vss: counted during the measured run (%s): " % self.what +
              ", ".join("%d %s of %d bytes" % (n, k[0], k[1]) for k, n in top), flush=True)
        return False


def fio(path, runtime, size, name="bench", rw="randwrite", bs="4k", iodepth=16, count=None):
    """Random 4 KiB direct writes at iodepth 16 (or @rw, @bs, @iodepth) for
    @runtime seconds and a final fsync: writes (or MiB for 1M blocks) per
    second of the wall time, the fsync included (a cache that only
    postpones the writes gains nothing)."""
    common = ["fio", "--name=" + name, "--filename=" + path, "--size=" + size,
              "--ioengine=libaio", "--direct=1", "--output-format=json"]
    if not os.path.exists(path):   # lay the file out: the runs then overwrite
        run(*common, "--rw=write", "--bs=1M", "--iodepth=4", capture_output=True)
    run(*common, "--rw=" + rw, "--bs=" + bs, "--iodepth=%d" % iodepth, "--time_based",
        "--runtime=3", "--end_fsync=1", capture_output=True)  # warm-up
    # What earlier runs left dirty on the host (a diff area is not synced
    # by a flush while no shadow is persistent) is not this run's to pay.
    run("sync")
    with count or contextlib.nullcontext():
        t0 = time.monotonic()
        out = run(*common, "--rw=" + rw, "--bs=" + bs, "--iodepth=%d" % iodepth,
                  "--time_based", "--runtime=%d" % runtime, "--end_fsync=1",
                  capture_output=True, text=True).stdout
        wall = time.monotonic() - t0
    w = json.loads(out[out.index("{"):])["jobs"][0]["write"]
    if bs == "1M":
        return w["io_bytes"] / 2 ** 20 / wall
    return w["total_ios"] / wall


def fio_seq(path, runtime, size, count=None):
    """MiB/s of sequential 1 MiB direct writes at iodepth 4, final fsync included."""
    return fio(path, runtime, size, name="seq", rw="write", bs="1M", iodepth=4, count=count)


def fio_load(f, args):
    """fio's random 4 KiB direct writes to @f, running until stopped."""
    return subprocess.Popen(["fio", "--name=load", "--filename=" + f, "--size=" + args.size,
                             "--ioengine=libaio", "--direct=1", "--rw=randwrite", "--bs=4k",
                             "--iodepth=16", "--time_based", "--runtime=900"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


FIFREEZE, FITHAW = 0xC0045877, 0xC0045878


def plain_freeze(mnt):
    """A syncfs of @mnt (as a set's settle does), then FIFREEZE and FITHAW
    timed: (both, FIFREEZE alone) in ms."""
    run("sync", "-f", mnt)
    fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        t0 = time.monotonic()
        fcntl.ioctl(fd, FIFREEZE, 0)
        try:
            t1 = time.monotonic()
        finally:
            fcntl.ioctl(fd, FITHAW, 0)
        t2 = time.monotonic()
    finally:
        os.close(fd)
    return (t2 - t0) * 1000, (t1 - t0) * 1000


def freezes_under_load(v, mnt, f, args, plain=None):
    """frozen_ms of sets taken one after another while fio writes @f.  With
    @plain (the mount point and file of ext4 on the plain loop file), also
    that filesystem's freezes (plain_freeze) under its own fio, taken in
    turn with the sets, each fio running only in its turn (SIGSTOP,
    SIGCONT) and for a second before its freeze: both see the machine
    alike.  Returns (frozen_ms of the sets, plain_freeze's of the floor)."""
    p = fio_load(f, args)
    q = fio_load(plain[1], args) if plain else None
    frozen, floor = [], []
    try:
        time.sleep(3)
        if q:
            p.send_signal(signal.SIGSTOP)
        for _ in range(args.freezes):
            if q:
                q.send_signal(signal.SIGSTOP)
                p.send_signal(signal.SIGCONT)
                time.sleep(1)
            out = json.loads(v("create", "shadow", "--for", mnt, "--json").stdout)
            frozen.append(out["frozen_ms"])
            v("delete", "shadows", "--all", "--quiet")
            if q:
                p.send_signal(signal.SIGSTOP)
                q.send_signal(signal.SIGCONT)
                time.sleep(1)
                floor.append(plain_freeze(plain[0]))
            else:
                time.sleep(0.2)
    finally:
        for x in (p, q):
            if x:
                x.send_signal(signal.SIGCONT)
                stop_process(x, signal.SIGINT)
    return frozen, floor


STEPS = re.compile(r"\(before: settle ([0-9.]+) ms, guardian ([0-9.]+) ms, settle ([0-9.]+) ms; "
                   r"freeze ([0-9.]+) ms, commit ([0-9.]+) ms, thaw ([0-9.]+) ms; "
                   r"settles wrote back ([0-9.]+) KiB; in the freeze ([0-9.]+) KiB written "
                   r"back, ([0-9]+) flushes of the engine in ([0-9.]+) ms, the longest "
                   r"([0-9.]+) ms; in the thaw ([0-9]+) flushes in ([0-9.]+) ms\)")
STEP_NAMES = ("settle", "guardian", "settle again", "FIFREEZE (and the loop flush)",
              "commit", "thaw", "KiB written back by the settles",
              "KiB written back in the freeze", "engine flushes in the freeze",
              "ms in them", "the longest", "engine flushes in the thaw", "ms in them")


def print_freezes(frozen, log):
    """The freeze times, and the steps of the same sets from vssd's @log:
    per step median / p99, and the worst sets step by step."""
    print("vss: freeze time per set under fio randwrite (%d sets): median %.1f ms, "
          "p99 %.1f ms, max %.1f ms" % (len(frozen), pct(frozen, 0.5), pct(frozen, 0.99),
                                       max(frozen)), flush=True)
    with open(log, errors="replace") as fh:
        steps = [[float(x) for x in m.groups()] for m in STEPS.finditer(fh.read())]
    steps = steps[-len(frozen):]
    if len(steps) != len(frozen):
        print("vss: vssd's log has the steps of %d of the %d sets" % (len(steps), len(frozen)))
        return
    print("vss: the same sets' steps (vssd's log), median / p99 (ms unless said): " +
          ", ".join("%s %.1f / %.1f" % (n, pct([s[i] for s in steps], 0.5),
                                         pct([s[i] for s in steps], 0.99))
                    for i, n in enumerate(STEP_NAMES)), flush=True)
    worst = sorted(range(len(frozen)), key=lambda i: -frozen[i])[:3]
    for i in worst:
        print("vss: set %d frozen %.1f ms: " % (i + 1, frozen[i]) + ", ".join(
            "%s %.1f" % (n, steps[i][k]) for k, n in enumerate(STEP_NAMES)), flush=True)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def fio_burst(path, size, name="burst", amount="8M"):
    """A short burst of random 4 KiB writes (8 MiB), untimed."""
    run("fio", "--name=" + name, "--filename=" + path, "--size=" + size,
        "--ioengine=libaio", "--direct=1", "--rw=randwrite", "--bs=4k",
        "--iodepth=16", "--io_size=" + amount, capture_output=True)


def fio_read(path, size):
    """MiB/s of one sequential pass of 1 MiB direct reads."""
    out = run("fio", "--name=read", "--filename=" + path, "--size=" + size,
              "--ioengine=psync", "--direct=1", "--rw=read", "--bs=1M",
              "--output-format=json", capture_output=True, text=True).stdout
    return json.loads(out[out.index("{"):])["jobs"][0]["read"]["bw_bytes"] / 2 ** 20


def drop_caches():
    run("sync")
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def bench_vss_reads(args, work, cl, v, mnt, f):
    """Sequential reads of @f: live, and through two exposed shadows."""
    v("delete", "shadows", "--all", "--quiet")
    if not os.path.exists(f):
        run("fio", "--name=layout", "--filename=" + f, "--size=" + args.size,
            "--ioengine=libaio", "--direct=1", "--rw=write", "--bs=1M", "--iodepth=4",
            capture_output=True)
    size = os.path.getsize(f)
    blocks = size // 16384
    old = json.loads(v("create", "shadow", "--for", mnt, "--json").stdout)["shadows"][0]
    # Random 4 KiB writes over a quarter of the blocks (some twice).
    fio_burst(f, args.size, amount=str(blocks // 4 * 4096))
    new = json.loads(v("create", "shadow", "--for", mnt, "--json").stdout)["shadows"][0]
    fio_burst(f, args.size, amount=str(blocks * 3 // 100 * 4096))
    run("sync", "-f", mnt)
    targets = []
    for name, sh in (("live volume", None), ("shadow, ~3% copied", new),
                     ("shadow, ~25% copied", old)):
        path = f
        if sh:
            d = os.path.join(work, "exp-" + sh["id"][:8])
            os.mkdir(d)
            v("expose", sh["id"], d)
            cl.add(v, "unexpose", d)
            path = os.path.join(d, os.path.basename(f))
        targets.append((name, path))
    # Passes go round the three, so that the machine's drift hits all alike;
    # ratios are medians of the per-pass ratios.
    cold = [[] for _ in targets]
    warm = [[] for _ in targets]
    for _ in range(args.read_passes):
        for i, (name, path) in enumerate(targets):
            drop_caches()
            cold[i].append(fio_read(path, args.size))
            warm[i].append(fio_read(path, args.size))   # warms what the first left
            warm[i][-1] = fio_read(path, args.size)

    def med(xs):
        return sorted(xs)[len(xs) // 2]

    print("\nsequential 1 MiB direct reads of the %s file (ext4 on the volume, loop, "
          "FUSE, engine), MiB/s, median of %d passes; ratios: median of per-pass ratios "
          "to the live volume:" % (args.size, args.read_passes))
    print("%-24s %10s %10s %10s %10s" % ("what", "cold", "vs live", "warm", "vs live"))
    for i, (name, _) in enumerate(targets):
        print("%-24s %10.0f %10.2f %10.0f %10.2f" % (
            name, med(cold[i]), med([c / l for c, l in zip(cold[i], cold[0])]),
            med(warm[i]), med([w / l for w, l in zip(warm[i], warm[0])])))


class Cleanup:
    def __init__(self):
        self.steps = []

    def add(self, fn, *args):
        self.steps.append((fn, args))

    def run(self):
        while self.steps:
            fn, args = self.steps.pop()
            try:
                fn(*args)
            except Exception as e:  # keep cleaning whatever happens
                print("cleanup: %s" % e, file=sys.stderr)


def umount(path):
    subprocess.run(["umount", path], capture_output=True)
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", path], capture_output=True)


def losetup_detach(dev):
    subprocess.run(["losetup", "-d", dev], capture_output=True)


def stop_process(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(120)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def bench_vss(args, work, cl, seq, ctx):
    vssd = os.path.join(args.build, "src", "vssd", "vssd")
    vss = os.path.join(args.build, "src", "vss", "vss")
    run_dir, state = os.path.join(work, "vss-run"), os.path.join(work, "vss-state")
    log = open(os.path.join(work, "vssd.log"), "w")
    if args.log:    # copied once vssd has stopped (cleanups run newest first)
        cl.add(shutil.copy, os.path.join(work, "vssd.log"), args.log)
    p = subprocess.Popen([vssd, "--run-dir", run_dir, "--state-dir", state],
                         stdout=log, stderr=log)
    cl.add(stop_process, p)

    def v(*a, **kw):
        return run(vss, "--run-dir", run_dir, *a, capture_output=True, text=True, **kw)

    for _ in range(200):
        if v("status", check=False).returncode == 0:
            break
        time.sleep(0.05)
    mnt = os.path.join(work, "vss-mnt")
    v("volume", "create", "bench", "--size", args.volume)
    v("volume", "mount", "bench", mnt, "--mkfs", "ext4")
    cl.add(v, "volume", "umount", "bench")
    f = os.path.join(mnt, "fio.dat")
    if args.reads:
        bench_vss_reads(args, work, cl, v, mnt, f)
        return []
    if args.freezes_only:
        run("fio", "--name=layout", "--filename=" + f, "--size=" + args.size,
            "--ioengine=libaio", "--direct=1", "--rw=write", "--bs=1M", "--iodepth=4",
            capture_output=True)
        plain = None
        if not args.no_floor:
            plain = plain_loop(args, work, cl)
            run("fio", "--name=layout", "--filename=" + plain[1], "--size=" + args.size,
                "--ioengine=libaio", "--direct=1", "--rw=write", "--bs=1M", "--iodepth=4",
                capture_output=True)
        frozen, floor = freezes_under_load(v, mnt, f, args, plain)
        print_freezes(frozen, log.name)
        if floor:
            print_floor(floor)
        return []
    def count(what):
        if not args.count:
            return None
        st = os.stat(os.path.join(run_dir, "dev"))
        return Count(work, p.pid, os.minor(st.st_dev), what)

    rows = [("vss volume", 0, fio(f, args.runtime, args.size))]
    frozen = []
    out = json.loads(v("create", "shadow", "--for", mnt, "--json").stdout)
    frozen.append(out["frozen_ms"])
    rows.append(("vss volume", 1, fio(f, args.runtime, args.size,
                                      count=count("random 4 KiB writes, 1 shadow"))))
    for i in range(2, 65):
        # Each shadow owns copies of its own, as it would in real use (the
        # 1-shadow run's writes are the first's).
        if i > 2:
            fio_burst(f, args.size)
        out = json.loads(v("create", "shadow", "--for", mnt, "--json").stdout)
        frozen.append(out["frozen_ms"])
    rows.append(("vss volume", 64, fio(f, args.runtime, args.size)))
    st = json.loads(v("list", "shadowstorage", "--json").stdout)["shadowstorage"][0]
    # The newest of the 64 alone, right after: the 1-shadow row ran minutes
    # before, and one run differs from the next by up to a quarter on the
    # test VM, so the two adjacent runs are the fairer 64-vs-1.
    for _ in range(63):
        v("delete", "shadows", "--for", mnt, "--oldest", "--quiet")
    rows.append(("vss volume (newest alone)", 1, fio(f, args.runtime, args.size)))
    # A persistent shadow: first writes go through the engine's redo queue
    # (their copies must be durable before the origin changes).
    v("delete", "shadows", "--all", "--quiet")
    v("create", "shadow", "--for", mnt, "--persistent", "--json")
    rows.append(("vss volume (persistent)", 1, fio(f, args.runtime, args.size)))
    print("vss: freeze time per set, idle: min %.1f ms, median %.1f ms, max %.1f ms; "
          "diff area used %.0f MiB" % (min(frozen), sorted(frozen)[len(frozen) // 2],
                                      max(frozen), st["used"] / 2 ** 20))
    v("delete", "shadows", "--all", "--quiet")
    v("create", "shadow", "--for", mnt, "--json")
    seq.append(("vss volume", 1, fio_seq(f, args.runtime, args.size,
                                         count=count("sequential 1 MiB writes, 1 shadow"))))
    v("delete", "shadows", "--all", "--quiet")
    print_freezes(freezes_under_load(v, mnt, f, args)[0], log.name)
    ctx["vss"] = (v, mnt, f)
    if not args.no_reads:   # after the rounds, if any (main)
        ctx["vss reads"] = lambda: bench_vss_reads(args, work, cl, v, mnt, f)
    return rows


def plain_loop(args, work, cl, name="plain", direct=True):
    """ext4 on a plain file in @work on a loop device, direct I/O unless
    @direct is False: (mount point, file)."""
    img, mnt = os.path.join(work, name + ".img"), os.path.join(work, name + "-mnt")
    run("truncate", "-s", args.volume, img)
    dev = run("losetup", "--find", "--show", "--direct-io=" + ("on" if direct else "off"),
              "--sector-size", "4096", img, capture_output=True, text=True).stdout.strip()
    cl.add(losetup_detach, dev)
    run("mkfs.ext4", "-q", "-E", "nodiscard", dev)
    os.mkdir(mnt)
    run("mount", dev, mnt)
    cl.add(umount, mnt)
    return mnt, os.path.join(mnt, "fio.dat")


def ram_loop(args, work, cl):
    """ext4 on a buffered loop device over a file in RAM (tmpfs): the loop
    driver with no storage behind it.  (mount point, file)."""
    ram = os.path.join(work, "ram")
    os.mkdir(ram)
    run("mount", "-t", "tmpfs", "vss-bench-ram", ram)   # bound: half the RAM
    cl.add(umount, ram)
    return plain_loop(args, ram, cl, name="ram", direct=False)


PAGE_REPORTING = "/sys/module/page_reporting/parameters/page_reporting_order"


def page_reporting_off(cl):
    """A guest with free page reporting (virtio-balloon) hands the pages it
    frees back to the host, a couple of seconds later, in 2 MiB pieces; a
    page allocated again then faults in the host on its first touch.  Every
    run frees and allocates page cache by the GiB (and `drop_caches` before
    each cold read frees it all), so whether a run lands on reported pages
    moved its result by a fifth on the test VM (6-8% with reporting off).
    So it is set to the highest order the kernel takes (11 on the test
    VM's 6.18: only pieces of 8 MiB or more are reported, none in practice)
    for the run, and given back at the end."""
    try:
        with open(PAGE_REPORTING) as f:
            old = f.read().strip()
    except OSError:
        return          # no free page reporting here
    for order in range(32, int(old), -1):
        try:
            with open(PAGE_REPORTING, "w") as f:
                f.write("%d\n" % order)
            break
        except OSError:
            continue    # above the kernel's maximum
    else:
        return
    print("free page reporting: order %d for the run (%s was %s; given back at the end)"
          % (order, PAGE_REPORTING, old), flush=True)

    def restore():
        with open(PAGE_REPORTING, "w") as f:
            f.write(old + "\n")
    cl.add(restore)


def print_floor(floor):
    total = [x[0] for x in floor]
    print("plain loop file: FIFREEZE + FITHAW of ext4 under the same fio load, in turn with "
          "the sets (%d freezes, a syncfs before each): median %.1f ms, p99 %.1f ms, max "
          "%.1f ms; FIFREEZE alone median %.1f ms, p99 %.1f ms" % (
              len(total), pct(total, 0.5), pct(total, 0.99), max(total),
              pct([x[1] for x in floor], 0.5), pct([x[1] for x in floor], 0.99)),
          flush=True)


def bench_loop(args, work, cl, seq, ctx):
    mnt, f = plain_loop(args, work, cl)
    ctx["plain loop file"] = f
    rows = [("plain loop file", 0, fio(f, args.runtime, args.size))]
    seq.append(("plain loop file", 0, fio_seq(f, args.runtime, args.size)))
    if not args.no_ceiling:
        mnt, f = ram_loop(args, work, cl)
        ctx["loop on RAM"] = f
        rows.append(("loop on RAM (ceiling)", 0, fio(f, args.runtime, args.size)))
    return rows


def rounds(args, ctx):
    """The random writes again, in @args.rounds rounds that go round the
    plain loop file, the loop on RAM and the vss volume with one new
    shadow, so that the machine's drift hits all three alike; prints each
    round and the medians of the per-round ratios.  One run of a stack
    differed from the next by about a fifth on the test VM (6-8% with
    page_reporting_off()): a single row above cannot settle a 1.5x, the
    median of these ratios can."""
    v, mnt, f = ctx["vss"]
    v("delete", "shadows", "--all", "--quiet")
    v("create", "shadow", "--for", mnt, "--json")
    stacks = [("plain loop file", ctx["plain loop file"])]
    if "loop on RAM" in ctx:
        stacks.append(("loop on RAM", ctx["loop on RAM"]))
    stacks.append(("vss volume, 1 shadow", f))
    got = {name: [] for name, _ in stacks}
    print("\nrandom 4 KiB writes in %d alternating rounds (as above), IOPS:" % args.rounds,
          flush=True)
    for r in range(args.rounds):
        for name, path in stacks:
            got[name].append(fio(path, args.runtime, args.size))
        print("round %d: " % (r + 1) + ", ".join(
            "%s %.0f" % (name, got[name][-1]) for name, _ in stacks), flush=True)

    def med(xs):
        xs = sorted(xs)
        n = len(xs)
        return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

    plain = got["plain loop file"]
    for name, _ in stacks[1:]:
        ratios = [a / b for a, b in zip(got[name], plain)]
        print("%s: median %.0f IOPS, %.2fx the plain loop file (median of the rounds' "
              "ratios; %s)" % (name, med(got[name]), med(ratios),
                               " ".join("%.2f" % x for x in ratios)), flush=True)
    if "loop on RAM" in got:
        ratios = [a / b for a, b in zip(got["vss volume, 1 shadow"], got["loop on RAM"])]
        print("vss volume, 1 shadow: %.2f of the loop on RAM (median; %s)" % (
            med(ratios), " ".join("%.2f" % x for x in ratios)), flush=True)


class QMP:
    def __init__(self, path):
        for _ in range(200):
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())            # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **arguments):
        self.f.write(json.dumps({"execute": name, "arguments": arguments}) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError("QMP %s: %s" % (name, r["error"]))


def bench_qemu(args, work, cl, seq, ctx):
    if not shutil.which("qemu-storage-daemon") or not shutil.which("qemu-img"):
        print("qemu-storage-daemon or qemu-img missing: no qemu rows", file=sys.stderr)
        return []
    base = os.path.join(work, "base.qcow2")
    export = os.path.join(work, "qsd-export")
    qmp = os.path.join(work, "qmp.sock")
    mnt = os.path.join(work, "qsd-mnt")
    run("qemu-img", "create", "-q", "-f", "qcow2", base, args.volume)
    open(export, "w").close()
    p = subprocess.Popen(["qemu-storage-daemon",
                          "--blockdev", "driver=file,node-name=file0,filename=%s,aio=threads"
                          ",cache.direct=off" % base,
                          "--blockdev", "driver=qcow2,node-name=disk0,file=file0",
                          "--export", "type=fuse,id=exp0,node-name=disk0,mountpoint=%s"
                          ",writable=on" % export,
                          "--chardev", "socket,id=qmp,path=%s,server=on,wait=off" % qmp,
                          "--monitor", "chardev=qmp"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cl.add(stop_process, p)
    q = QMP(qmp)
    for _ in range(200):
        if os.path.ismount(export):
            break
        time.sleep(0.05)
    cl.add(umount, export)
    # Buffered: qemu 7.2's FUSE export returns stale data to a direct-I/O
    # loop device (mkfs then mount finds corrupt group descriptors).
    dev = run("losetup", "--find", "--show", "--sector-size", "4096",
              export, capture_output=True, text=True).stdout.strip()
    cl.add(losetup_detach, dev)
    run("mkfs.ext4", "-q", "-E", "nodiscard", dev)
    os.mkdir(mnt)
    run("mount", dev, mnt)
    cl.add(umount, mnt)
    f = os.path.join(mnt, "fio.dat")
    rows = [("qemu qcow2 FUSE", 0, fio(f, args.runtime, args.size))]
    top = "disk0"
    for i in range(1, 65):
        if i > 2:
            fio_burst(f, args.size)     # as for vss: each snapshot owns writes
        run("sync", "-f", mnt)
        q.cmd("blockdev-snapshot-sync", **{"node-name": top,
              "snapshot-file": os.path.join(work, "snap%d.qcow2" % i),
              "snapshot-node-name": "snap%d" % i, "format": "qcow2"})
        top = "snap%d" % i
        if i == 1:
            rows.append(("qemu qcow2 FUSE", i, fio(f, args.runtime, args.size)))
            seq.append(("qemu qcow2 FUSE", i, fio_seq(f, args.runtime, args.size)))
        if i == 64:
            rows.append(("qemu qcow2 FUSE", i, fio(f, args.runtime, args.size)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--dir", default=None, help="where to work (default: /var/tmp)")
    ap.add_argument("--runtime", type=int, default=20, help="seconds per measurement")
    ap.add_argument("--size", default="1G", help="fio file size")
    ap.add_argument("--volume", default="4G", help="size of each device")
    ap.add_argument("--only", choices=["vss", "loop", "qemu"], action="append")
    ap.add_argument("--reads", action="store_true",
                    help="only the vss read measurements")
    ap.add_argument("--read-passes", type=int, default=5, help="passes of the reads")
    ap.add_argument("--no-reads", action="store_true", help="skip the vss read measurements")
    ap.add_argument("--freezes", type=int, default=40, help="sets taken under load")
    ap.add_argument("--freezes-only", action="store_true",
                    help="only the sets under load (vss alone)")
    ap.add_argument("--log", default=None, help="keep vssd's log there")
    ap.add_argument("--count", action="store_true",
                    help="count vssd's FUSE requests and preads/pwrites by size in the "
                         "1-shadow runs (needs perf)")
    ap.add_argument("--no-ceiling", action="store_true",
                    help="not the loop device over a file in RAM")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating rounds of plain loop file, loop on RAM and vss with "
                         "1 shadow after the rows (0: none)")
    ap.add_argument("--keep-page-reporting", action="store_true",
                    help="leave the guest's free page reporting as it is (see the docstring)")
    ap.add_argument("--no-floor", action="store_true",
                    help="with --freezes-only: not the plain loop file's freezes after")
    args = ap.parse_args()
    if args.reads or args.freezes_only:
        args.only = ["vss"]
    if os.geteuid() != 0:
        sys.exit("bench-fio: needs root")
    args.build = os.path.abspath(args.build)
    work = tempfile.mkdtemp(prefix="vss-bench-", dir=args.dir or "/var/tmp")
    cl = Cleanup()
    cl.add(shutil.rmtree, work, True)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    if not args.keep_page_reporting:
        page_reporting_off(cl)
    rows, seq, ctx = [], [], {}
    try:
        for name, fn in (("vss", bench_vss), ("loop", bench_loop), ("qemu", bench_qemu)):
            if not args.only or name in args.only:
                rows += fn(args, work, cl, seq, ctx)
                print("%s: %s; sequential: %s" % (name, rows, seq), file=sys.stderr,
                      flush=True)
        if args.rounds > 0 and "vss" in ctx and "plain loop file" in ctx:
            rounds(args, ctx)
        if "vss reads" in ctx:
            ctx["vss reads"]()
    finally:
        cl.run()
    if not rows:
        return
    floor = next((r[2] for r in rows if r[0] == "plain loop file"), None)
    qemu1 = next((r[2] for r in rows if r[0] == "qemu qcow2 FUSE" and r[1] == 1), None)
    base = {}
    print("\nfio randwrite 4k, direct, libaio, iodepth 16, %d s + end_fsync, file %s, "
          "on ext4; IOPS over the wall time:" % (args.runtime, args.size))
    print("%-24s %9s %10s %12s %12s %12s" % ("stack", "shadows", "IOPS", "vs own 0",
                                            "vs loop", "vs qemu 1"))
    for stack, n, iops in rows:
        key = stack.split(" (")[0]      # a variant is compared with its stack's 0
        base.setdefault(key, iops)
        print("%-24s %9d %10.0f %12.2f %12s %12s" % (
            stack, n, iops, iops / base[key], "%.2f" % (iops / floor) if floor else "-",
            "%.2f" % (iops / qemu1) if qemu1 else "-"))
    v64 = next((r[2] for r in rows if r[0] == "vss volume" and r[1] == 64), None)
    alone = next((r[2] for r in rows if r[0] == "vss volume (newest alone)"), None)
    if v64 and alone:
        print("vss: 64 shadows %.2f of the newest alone (the run right after them)" % (
            v64 / alone))
    ceiling = next((r[2] for r in rows if r[0] == "loop on RAM (ceiling)"), None)
    vss1 = next((r[2] for r in rows if r[0] == "vss volume" and r[1] == 1), None)
    if ceiling and floor:
        print("the loop device over RAM is %.2fx the plain loop file%s" % (
            ceiling / floor, "; vss with 1 shadow is %.2f of it" % (vss1 / ceiling)
            if vss1 else ""))
    if seq:
        sfloor = next((r[2] for r in seq if r[0] == "plain loop file"), None)
        print("\nfio write 1M (sequential), direct, libaio, iodepth 4, %d s + end_fsync, "
              "MiB/s over the wall time:" % args.runtime)
        print("%-24s %9s %10s %12s" % ("stack", "shadows", "MiB/s", "vs loop"))
        for stack, n, mibs in seq:
            print("%-24s %9d %10.0f %12s" % (stack, n, mibs,
                  "%.2f" % (mibs / sfloor) if sfloor else "-"))


if __name__ == "__main__":
    main()
