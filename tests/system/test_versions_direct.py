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
        if mode in ("garbage", "escape-socket"):
            # A copy back read directly fails the same way, said.
            r = d.vss("restore-version", f, "--shadow", ids[0], "--to", f + ".r", "--read",
                      "direct", check=False)
            assert r.returncode == 1 and "shadow copy %s cannot be read: " % ids[0] in r.stderr \
                and said in r.stderr, r.stderr
            assert not os.path.exists(f + ".r")
        d.vss("status")
        d.vss("delete", "shadows", "--all", "--quiet")


def acl(*entries):
    """A POSIX ACL as the kernel takes it in system.posix_acl_access."""
    import struct
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in entries)


def tree_of(root):
    """Every entry below @root: type, mode, owner, size, times to the ns,
    xattrs, content or target; independent of how vss copied it."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in [""] + dirs + files:
            p = os.path.join(dirpath, name) if name else dirpath
            if not name and dirpath != root:
                continue
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            x = {} if os.path.islink(p) else {
                k: os.getxattr(p, k) for k in sorted(os.listxattr(p))}
            body = (os.readlink(p) if os.path.islink(p) else
                    open(p, "rb").read() if os.path.isfile(p) else None)
            out[rel] = (st.st_mode, st.st_uid, st.st_gid,
                        None if os.path.isdir(p) else st.st_size,
                        st.st_atime_ns, st.st_mtime_ns, x, body)
    return out


def test_restore_direct_equals_mount(vssd, workdir):
    """vss restore-version reading the version straight from the shadow's
    device (root, ext4, clean journal): a file and a directory tree with a
    symlink, xattrs (user. and a POSIX ACL), owners, a mode no one may
    read, a file of several frames; the same, byte for byte and in every
    field, as through a mount; and as the tree was."""
    mnt = mounted(vssd)
    t = os.path.join(mnt, "t")
    sub = os.path.join(t, "sub")
    os.makedirs(sub)
    big = os.urandom(200000)
    write(os.path.join(t, "a"), big, 10**18 + 1)
    os.chown(os.path.join(t, "a"), 1234, 5678)
    os.chmod(os.path.join(t, "a"), 0o640)
    os.setxattr(os.path.join(t, "a"), "user.color", b"blue")
    os.setxattr(os.path.join(t, "a"), "system.posix_acl_access",
                acl((1, 6, 0xffffffff), (2, 4, 4321), (4, 4, 0xffffffff),
                    (0x10, 4, 0xffffffff), (0x20, 0, 0xffffffff)))
    write(os.path.join(t, "secret"), b"nobody reads this", 2 * 10**18)
    os.chmod(os.path.join(t, "secret"), 0)
    write(os.path.join(sub, "empty"), b"", 3 * 10**18 + 999999999)
    os.symlink("../a", os.path.join(sub, "link"))
    os.lchown(os.path.join(sub, "link"), 77, 88)
    os.utime(os.path.join(sub, "link"), ns=(5 * 10**18, 6 * 10**18), follow_symlinks=False)
    os.mkfifo(os.path.join(sub, "fifo"))
    os.chmod(sub, 0o751)
    os.setxattr(sub, "user.d", b"1")
    os.utime(sub, ns=(7 * 10**18, 8 * 10**18 + 3))
    os.utime(t, ns=(9 * 10**18, 10 * 10**18))
    want = tree_of(t)
    sid = vssd.shadow(mnt)["shadows"][0]["id"]
    # Changed since: what is restored is the shadow's.  Reading the copies
    # must not move their atimes (the test's own mount).
    write(os.path.join(t, "a"), b"live")
    subprocess.run(["mount", "-o", "remount,noatime", mnt], check=True)
    got = {}
    for how in ("direct", "mount"):
        dest = os.path.join(mnt, "out-" + how)
        r = json.loads(vssd.vss("restore-version", t, "--shadow", sid, "--to", dest,
                                "--read", how, "--json").stdout)
        assert r["read"] == how and r["files"] == 6 and r["bytes"] == len(big) + 17, r
        got[how] = tree_of(dest)
        if how == "direct":
            # Never over what exists, unless told.
            r = vssd.vss("restore-version", t, "--shadow", sid, "--to", dest, "--read", how,
                         check=False)
            assert r.returncode == 1 and "exists" in r.stderr, r.stderr
            r = json.loads(vssd.vss("restore-version", t, "--shadow", sid, "--to", dest,
                                    "--force", "--read", how, "--json").stdout)
            assert r["read"] == how and tree_of(dest) == got[how]
            r = vssd.vss("restore-version", os.path.join(t, "none"), "--shadow", sid,
                         "--read", how, check=False)
            assert r.returncode == 1 and "not in that shadow copy" in r.stderr, r.stderr
        f = json.loads(vssd.vss("restore-version", os.path.join(t, "a"), "--shadow", sid,
                                "--to", dest + ".a", "--read", how, "--json").stdout)
        assert f["read"] == how and f["bytes"] == len(big)
        got[how + ".a"] = tree_of(dest + ".a")
    assert got["direct"] == got["mount"]
    assert got["direct.a"] == got["mount.a"]
    assert "shadow %s: %s restored to %s for uid 0 (6 entries, read directly)" % (
        sid, t, os.path.join(mnt, "out-direct")) in vssd.log()
    # As the tree was (atimes aside: reading it moved them), the fifo left out.
    strip = {k: v[:4] + v[5:] for k, v in want.items() if k != "sub/fifo"}
    assert {k: v[:4] + v[5:] for k, v in got["direct"].items()} == strip
    assert got["direct"]["a"][6]["user.color"] == b"blue"
    assert "system.posix_acl_access" in got["direct"]["a"][6]
    assert got["direct"]["secret"][0] & 0o7777 == 0
    # A shadow exposed already (the mount path's restores exposed it) is
    # read through its mount, as a listing reads it, even asked to read
    # directly; auto with one shadow: a mount.
    r = json.loads(vssd.vss("restore-version", t, "--shadow", sid, "--to", dest, "--force",
                            "--read", "direct", "--json").stdout)
    assert r["read"] == "mount" and tree_of(dest) == got["mount"]
    r = json.loads(vssd.vss("restore-version", os.path.join(t, "a"), "--shadow", sid,
                            "--to", os.path.join(mnt, "auto"), "--json").stdout)
    assert r["read"] == "mount"
    # With more than 8 shadows on the volume, auto reads directly, as
    # vss versions does.
    more = [vssd.shadow(mnt)["shadows"][0]["id"] for _ in range(8)]
    r = json.loads(vssd.vss("restore-version", os.path.join(t, "a"), "--shadow", more[-1],
                            "--to", os.path.join(mnt, "auto9"), "--json").stdout)
    assert r["read"] == "direct"
    assert open(os.path.join(mnt, "auto9"), "rb").read() == b"live"
    # Another user's copy goes through a mount, whatever it asks: the
    # kernel checks its rights on the version.
    for p in (workdir, vssd.root, mnt):        # the socket and the mount, for others
        os.chmod(p, 0o755)
    u = os.path.join(mnt, "u")
    os.mkdir(u)
    os.chown(u, 1234, 1234)
    r = json.loads(vssd.vss("restore-version", os.path.join(t, "a"), "--shadow", more[-2],
                            "--to", os.path.join(u, "a"), "--read", "direct", "--json",
                            user=1234).stdout)
    assert r["read"] == "mount"
    assert open(os.path.join(u, "a"), "rb").read() == b"live"
