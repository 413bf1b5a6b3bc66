"""A file's earlier versions (vss versions, vss restore-version) on the
built-in engine's shadows (ext4) and on btrfs snapshots: only versions that
differ are listed, newest first, checked against what the test wrote
before each shadow; a shadow with nothing written since the one before it
is listed from that one, unmounted, and one whose superblock changed
otherwise is mounted; a copy back brings content, mode, times and xattrs;
who cannot read a file live sees none of its versions, and a copy is made
with the caller's rights only; bad input is refused."""
import json
import os
import subprocess

from test_providers import make_btrfs, subvolume
from test_schedule import NOBODY, mounted


def write(path, data, mtime=None):
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def versions(d, path, **kw):
    return json.loads(d.vss("versions", path, "--json", **kw).stdout)["versions"]


def test_engine_versions_and_restore(vssd, workdir):
    mnt = mounted(vssd)
    f = os.path.join(mnt, "f")
    # What f held at each shadow, oldest first; the live file last.
    states = [(b"A" * 100, 1000), (b"A" * 100, 1000), (b"B" * 100, 2000),
              (b"B" * 100, 2500), (b"C" * 7, 3000)]
    ids = []
    for data, mtime in states:
        write(f, data, mtime)
        os.setxattr(f, "user.v", data[:1])
        ids.append(vssd.shadow(mnt)["shadows"][0]["id"])
    write(f, b"D" * 9)
    got = versions(vssd, f)
    # Differs from the next newer: C (from D), B at 2500 is B at 2000's
    # bytes (same size, other mtime: compared, equal), A (from B); the
    # second A is the first's.
    assert [v["shadow"] for v in got] == [ids[4], ids[3], ids[1]], (got, ids)
    assert [v["size"] for v in got] == [7, 100, 100]
    assert [v["mtime_ns"] // 10**9 for v in got] == [3000, 2500, 1000]
    assert all(v["type"] == "file" for v in got)
    table = vssd.vss("versions", f).stdout
    assert ids[4] in table and ids[0] not in table
    # vssd's own exposure for reading gives way to one asked for.
    exp = os.path.join(workdir, "exp")
    vssd.vss("expose", ids[4], exp)
    with open(os.path.join(exp, "f"), "rb") as x:
        assert x.read() == b"C" * 7
    vssd.vss("unexpose", exp)
    assert [v["shadow"] for v in versions(vssd, f)] == [ids[4], ids[3], ids[1]]
    # A directory: by its entries' names, types, sizes and times.
    assert [v["shadow"] for v in versions(vssd, mnt)] == [ids[4], ids[3], ids[2], ids[1]]
    # Copy back elsewhere, then in place (refused unless --force).
    to = os.path.join(workdir, "restored")
    r = vssd.vss("restore-version", f, "--shadow", ids[1][:8], "--to", to)
    assert "Restored" in r.stdout
    with open(to, "rb") as x:
        assert x.read() == b"A" * 100
    st = os.stat(to)
    assert int(st.st_mtime) == 1000 and os.getxattr(to, "user.v") == b"A"
    r = vssd.vss("restore-version", f, "--shadow", ids[2], check=False)
    assert r.returncode == 1 and "newer" in r.stderr and "--force" in r.stderr, r.stderr
    r = vssd.vss("restore-version", f, "--shadow", ids[2], "--to", to, check=False)
    assert r.returncode == 1 and "exists" in r.stderr
    vssd.vss("restore-version", f, "--shadow", ids[2], "--force")
    with open(f, "rb") as x:
        assert x.read() == b"B" * 100
    # A directory, recursively, with a symlink and modes.
    sub = os.path.join(mnt, "dir")
    os.makedirs(os.path.join(sub, "deep"))
    write(os.path.join(sub, "deep", "g"), b"g1")
    os.chmod(os.path.join(sub, "deep", "g"), 0o640)
    os.symlink("deep/g", os.path.join(sub, "link"))
    sid = vssd.shadow(mnt)["shadows"][0]["id"]
    subprocess.run(["rm", "-rf", sub], check=True)
    out = os.path.join(workdir, "dir-back")
    vssd.vss("restore-version", sub, "--shadow", sid, "--to", out)
    with open(os.path.join(out, "deep", "g"), "rb") as x:
        assert x.read() == b"g1"
    assert os.stat(os.path.join(out, "deep", "g")).st_mode & 0o777 == 0o640
    assert os.readlink(os.path.join(out, "link")) == "deep/g"
    # Gone live: its versions are still listed (its directory is readable),
    # then it is restored in place.
    gone = json.loads(vssd.vss("versions", sub, "--json").stdout)
    assert gone["exists"] is False and [v["shadow"] for v in gone["versions"]] == [sid]
    r = vssd.vss("versions", os.path.join(sub, "deep", "g"), check=False)
    assert r.returncode == 1        # its directory is gone too
    vssd.vss("restore-version", sub, "--shadow", sid)
    assert os.path.isdir(os.path.join(sub, "deep"))


def test_idle_shadows_are_not_mounted(vssd):
    """Shadows taken with nothing written between them differ in ext4's
    superblock write time and checksum only: their versions are the next
    newer one's, found without a mount.  A label is another superblock
    field: the shadow before it is mounted and compared."""
    mnt = mounted(vssd)
    f = os.path.join(mnt, "f")
    write(f, b"A" * 100, 1000)
    idle = [vssd.shadow(mnt)["shadows"][0]["id"] for _ in range(4)]
    write(f, b"B" * 100, 2000)
    b = vssd.shadow(mnt)["shadows"][0]["id"]
    dev = subprocess.run(["findmnt", "-n", "-o", "SOURCE", mnt], capture_output=True,
                         text=True, check=True).stdout.strip()
    subprocess.run(["tune2fs", "-L", "relabelled", dev], check=True, capture_output=True)
    labelled = vssd.shadow(mnt)["shadows"][0]["id"]
    write(f, b"C" * 100, 3000)
    assert [v["shadow"] for v in versions(vssd, f)] == [labelled, idle[-1]]
    assert {s["id"] for s in vssd.shadows() if s["exposed"]} == {labelled, b, idle[-1]}
    # Asked for by name, an idle one is mounted and holds what it did.
    to = os.path.join(vssd.root, "back")
    vssd.vss("restore-version", f, "--shadow", idle[0], "--to", to)
    with open(to, "rb") as x:
        assert x.read() == b"A" * 100


def test_who_may_see_versions(vssd, workdir):
    mnt = mounted(vssd)
    for p in (workdir, vssd.root, mnt):        # the socket and the mount, for others
        os.chmod(p, 0o755)
    secret, shared = os.path.join(mnt, "secret"), os.path.join(mnt, "shared")
    write(secret, b"s1")
    os.chmod(secret, 0o600)
    write(shared, b"old, private")
    os.chmod(shared, 0o600)
    sid = vssd.shadow(mnt)["shadows"][0]["id"]
    write(secret, b"s2")
    write(shared, b"new, for all")
    os.chmod(shared, 0o644)
    out = os.path.join(workdir, "mine")
    os.mkdir(out)
    os.chown(out, NOBODY, NOBODY)

    def as_nobody(*args):
        return vssd.vss(*args, check=False, user=NOBODY)

    r = as_nobody("versions", secret)     # as for a path it cannot reach
    assert r.returncode == 1 and "you may not reach it" in r.stderr, r.stderr
    hidden = os.path.join(mnt, "hidden")        # a directory nobody may not read
    os.mkdir(hidden, 0o700)
    write(os.path.join(hidden, "h"), b"h")
    vssd.shadow(mnt)
    os.unlink(os.path.join(hidden, "h"))
    r = as_nobody("versions", os.path.join(hidden, "h"))
    assert r.returncode == 1 and "you may not reach it" in r.stderr, r.stderr
    r = as_nobody("restore-version", secret, "--shadow", sid, "--to", out + "/x")
    assert r.returncode == 1 and "permission denied" in r.stderr, r.stderr
    # Readable now, not then: listed, but its old bytes are not the user's.
    assert [v["shadow"] for v in json.loads(as_nobody("versions", shared, "--json")
                                            .stdout)["versions"]] == [sid]
    r = as_nobody("restore-version", shared, "--shadow", sid, "--to", out + "/y")
    assert r.returncode == 1 and "could not read" in r.stderr, r.stderr
    assert os.listdir(out) == []
    # Nor written where the user may not write.
    r = as_nobody("restore-version", mnt, "--shadow", sid, "--to", mnt + "/z")
    assert r.returncode == 1 and not os.path.exists(mnt + "/z")


def test_bad_input(vssd, workdir):
    mnt = mounted(vssd)
    other = mounted(vssd, "w", "32M")
    write(os.path.join(mnt, "f"), b"x")
    vssd.shadow(mnt)
    theirs = vssd.shadow(other)["shadows"][0]["id"]
    nowhere = os.path.join(workdir, "f")
    write(nowhere, b"y")
    r = vssd.vss("versions", nowhere, check=False)
    assert r.returncode == 1 and "not on a volume" in r.stderr, r.stderr
    # Never there: looked for in the shadows, none found.
    r = vssd.vss("versions", os.path.join(mnt, "missing"))
    assert r.stdout.strip() == "No items found that satisfy the query."
    r = vssd.vss("versions", os.path.join(mnt, "nodir", "missing"), check=False)
    assert r.returncode == 1 and "No such file" in r.stderr, r.stderr
    r = vssd.vss("restore-version", os.path.join(mnt, "f"), "--shadow", theirs, "--to",
                 os.path.join(workdir, "g"), check=False)
    assert r.returncode == 1 and "no shadow copy" in r.stderr, r.stderr
    r = vssd.vss("restore-version", os.path.join(mnt, "f"), check=False)
    assert r.returncode == 2
    for cmd in (["versions"], ["restore-version", "--shadow", theirs]):
        r = vssd.vss(*cmd, "/" + "x" * 5000, check=False)
        assert r.returncode == 1 and "too long" in r.stderr, r.stderr
    # A volume without shadows has no versions.
    write(os.path.join(other, "h"), b"h")
    vssd.vss("delete", "shadows", "--for", other, "--all")
    assert versions(vssd, os.path.join(other, "h")) == []


def test_btrfs_200_shadows_10_differ(vssd):
    mnt = make_btrfs(vssd.root)
    sub = subvolume(os.path.join(mnt, "sub"))
    f = os.path.join(sub, "f")
    want = []
    for i in range(200):
        if i % 20 == 0:
            write(f, b"v%d" % i, 10000 + i)
        sid = vssd.shadow(sub)["shadows"][0]["id"]
        if i % 20 == 19:
            want.append(sid)       # the last shadow of each content: its newest
    write(f, b"live")
    got = versions(vssd, f)
    assert [v["shadow"] for v in got] == list(reversed(want))
    assert all(v["provider"] == "btrfs" for v in got)
    # A btrfs version copied back.
    vssd.vss("restore-version", f, "--shadow", want[0], "--force")
    with open(f, "rb") as x:
        assert x.read() == b"v0"
    vssd.vss("delete", "shadows", "--all", "--quiet")
    subprocess.run(["umount", mnt], check=True)
