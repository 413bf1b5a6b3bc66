"""vss versions reading the engine's ext4 shadows straight from their
devices (libext2fs, in a child without privileges) rather than mounting
them: the same listing as through mounts when the file differs in every
shadow, a shadow whose journal needs recovery mounted instead (and still
right), a damaged filesystem in a shadow a clear warning with vssd still
up, and a reader child that hangs, crashes or answers garbage killed and
said, never a wrong listing."""
import json
import mmap
import os
import re
import subprocess

from test_schedule import mounted


def write(path, data, ns=None):
    with open(path, "wb") as f:
        f.write(data)
    if ns is not None:
        os.utime(path, ns=(ns, ns))


def listing(d, path, how, check=True):
    r = d.vss("versions", path, "--json", "--read", how, check=check)
    return json.loads(r.stdout) if r.returncode == 0 else r


def exposed(d):
    return {s["id"] for s in d.shadows() if s["exposed"]}


def source(mnt):
    return subprocess.run(["findmnt", "-n", "-o", "SOURCE", mnt], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_every_shadow_differs(vssd):
    mnt = mounted(vssd)
    f, sub = os.path.join(mnt, "f"), os.path.join(mnt, "d")
    os.mkdir(sub)
    # Before each shadow, oldest first: what f holds and its mtime (ns).
    # Equal sizes with other bytes and another time; equal bytes and
    # another time (the same content: not listed); nanoseconds only.
    states = [(b"a" * 10, 10**18), (b"b" * 10, 10**18 + 5), (b"b" * 10, 10**18 + 7),
              (b"c" * 4000, 2 * 10**18), (b"d" * 4000, 2 * 10**18 + 1),
              (b"e" * 70000, 3 * 10**18), (b"f", 4 * 10**18), (b"g" * 9, 5 * 10**18),
              (b"h" * 9, 5 * 10**18 + 999999999), (b"i" * 100, 6 * 10**18),
              (b"j" * 100, 6 * 10**18 + 1), (b"k" * 300000, 7 * 10**18)]
    ids = []
    for i, (data, ns) in enumerate(states):
        write(f, data, ns)
        write(os.path.join(sub, "e%d" % i), b"x" * i)
        ids.append(vssd.shadow(mnt)["shadows"][0]["id"])
    write(f, b"live")
    # Independent of either path: a version is listed where its bytes or
    # type differ from the next newer one's (the newest: from the live file).
    want = [ids[i] for i in reversed(range(len(states)))
            if i == len(states) - 1 or states[i][0] != states[i + 1][0]]
    assert len(want) == len(states) - 1
    direct = listing(vssd, f, "direct")
    assert [v["shadow"] for v in direct["versions"]] == want, (direct, ids)
    assert direct["unreadable"] == []
    assert exposed(vssd) == set(), "read directly: nothing mounted"
    d_dir = listing(vssd, sub, "direct")
    # Each shadow's d has one more entry than the one before; the newest's
    # is the live one's.
    assert [v["shadow"] for v in d_dir["versions"]] == list(reversed(ids[:-1]))
    # Mixed: two shadows exposed (read through their mounts), the others
    # read directly, compared across each other.
    exp = [os.path.join(vssd.root, "exp%d" % i) for i in (5, 8)]
    vssd.vss("expose", ids[5], exp[0])
    vssd.vss("expose", ids[8], exp[1])
    assert listing(vssd, f, "direct")["versions"] == direct["versions"]
    assert listing(vssd, sub, "direct")["versions"] == d_dir["versions"]
    for e in exp:
        vssd.vss("unexpose", e)
    # The mount path's answer, field for field (sizes, times to the ns,
    # modes, owners), and the default (more than 8 shadows: direct).
    mount = listing(vssd, f, "mount")
    assert direct["versions"] == mount["versions"]
    assert listing(vssd, sub, "mount")["versions"] == d_dir["versions"]
    assert listing(vssd, f, "auto")["versions"] == mount["versions"]
    assert [v["size"] for v in direct["versions"]][:2] == [300000, 100]
    assert direct["versions"][1]["mtime_ns"] == 6 * 10**18 + 1
    # A path gone now and not in the older shadows, and one that never was.
    g = os.path.join(sub, "e11")
    os.unlink(g)
    gone = listing(vssd, g, "direct")
    assert gone["exists"] is False and [v["shadow"] for v in gone["versions"]] == [ids[11]]
    assert listing(vssd, os.path.join(mnt, "none"), "direct")["versions"] == []
    r = vssd.vss("versions", f, "--read", "sideways", check=False)
    assert r.returncode == 2


def test_journal_needs_recovery_is_mounted(vssd):
    """The RECOVER flag set in a shadow's superblock: not read directly but
    through a mount, as before this reader; the listing still right.
    (ext4 without a journal keeps the flag through a freeze, which clears
    it on a journalled one, so the flag is set in the live superblock,
    through the device, before the shadow.)"""
    vssd.create_volume("v", "64M")
    subprocess.run(["mkfs.ext4", "-q", "-b", "4096", "-O", "^has_journal",
                    vssd.device("v")], check=True)
    mnt = os.path.join(vssd.root, "mnt-v")
    vssd.vss("volume", "mount", "v", mnt)
    f = os.path.join(mnt, "f")
    ids = []
    for i in range(3):
        write(f, b"v%d" % i * 50, (i + 1) * 10**18)
        if i == 1:
            with open(source(mnt), "r+b", buffering=0) as dev:
                dev.seek(1024 + 0x60)
                incompat = int.from_bytes(dev.read(4), "little") | 0x4   # RECOVER
                dev.seek(1024 + 0x60)
                dev.write(incompat.to_bytes(4, "little"))
        ids.append(vssd.shadow(mnt)["shadows"][0]["id"])
    write(f, b"live")
    got = listing(vssd, f, "direct")
    assert [v["shadow"] for v in got["versions"]] == list(reversed(ids)), got
    assert got["unreadable"] == []
    # Only the shadows with the flag (it stays set) were mounted.
    assert exposed(vssd) == {ids[1], ids[2]}
    assert "journal needs recovery" in vssd.log()
    assert listing(vssd, f, "mount")["versions"] == got["versions"]


def test_damaged_shadow_is_said(vssd):
    mnt = mounted(vssd)
    f = os.path.join(mnt, "f")
    write(f, b"good" * 10, 10**18)
    good = vssd.shadow(mnt)["shadows"][0]["id"]
    write(f, b"then" * 10, 2 * 10**18)
    # Everything on its home block, then the file's inode overwritten on
    # the device behind the kernel's back (O_DIRECT): the next shadow
    # holds a crafted inode (its checksum no longer matches).
    subprocess.run(["fsfreeze", "-f", mnt], check=True)
    subprocess.run(["fsfreeze", "-u", mnt], check=True)
    dev = source(mnt)
    out = subprocess.run(["debugfs", "-R", "imap /f", dev], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"located at block (\d+), offset (0x[0-9a-f]+)", out)
    block, offset = int(m.group(1)), int(m.group(2), 16)
    bs = int(subprocess.run(["blockdev", "--getbsz", dev], capture_output=True, text=True,
                            check=True).stdout)
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    try:
        buf = mmap.mmap(-1, bs)
        assert os.preadv(fd, [buf], block * bs) == bs
        buf[offset + 4:offset + 64] = b"\xff" * 60
        assert os.pwritev(fd, [buf], block * bs) == bs
    finally:
        os.close(fd)
    bad = vssd.shadow(mnt)["shadows"][0]["id"]
    r = vssd.vss("versions", f, "--read", "direct")
    assert "vss: warning: shadow copy %s cannot be read: its ext4 filesystem is damaged" % bad \
        in r.stderr, r.stderr
    got = listing(vssd, f, "direct")
    assert [v["shadow"] for v in got["versions"]] == [good]
    assert [u["shadow"] for u in got["unreadable"]] == [bad]
    assert bad not in exposed(vssd)
    vssd.vss("status")


def test_reader_child_failures(daemon_factory):
    """A child that hangs is killed at its time limit, one that crashes or
    answers garbage is said; after three, no more for that listing; vssd
    answers on.  And the child runs as nobody, without groups or new
    privileges, not dumpable, with 8 descriptors at most; its seccomp
    filter is an allow-list: a socket, an open and even a getcwd (which a
    deny-list of new channels lets through) kill it, and vssd says why."""
    sigsys = "killed by its sandbox for a system call outside its allow-list (SIGSYS)"
    for mode, said in (("hang", "took longer than 300 ms"), ("crash", "signal 11"),
                       ("garbage", "answered what does not parse"),
                       ("whoami", "uid=65534 gid=65534 groups=0 nnp=1 dumpable=0 nofile=8"),
                       ("escape-socket", sigsys), ("escape-open", sigsys),
                       ("escape-getcwd", sigsys)):
        d = daemon_factory(mode, env={"VSS_TEST_EXT4_CHILD": mode,
                                      "VSS_TEST_EXT4_LIMIT_MS": "300"})
        mnt = mounted(d)
        f = os.path.join(mnt, "f")
        ids = []
        for i in range(4):
            write(f, b"%d" % i)
            ids.append(d.shadow(mnt)["shadows"][0]["id"])
        r = d.vss("versions", f, "--read", "direct", "--json")
        got = json.loads(r.stdout)
        assert got["versions"] == [], got
        assert [u["shadow"] for u in got["unreadable"]] == list(reversed(ids)), got
        assert said in got["unreadable"][0]["error"], got
        if mode != "whoami":
            assert "failed 3 times" in got["unreadable"][3]["error"], got
        if mode.startswith("escape-"):
            assert "was let through" not in r.stdout
            assert sigsys in d.log(), d.log()
        d.vss("status")
        d.vss("delete", "shadows", "--all", "--quiet")
