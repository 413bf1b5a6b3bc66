"""Backups into a repository and their restores (vss backup, vss restore;
doc/backup-format.md): chains of full, incremental and differential
backups of a changing tree on ext4 and xfs, written to all along, each
restore compared with an independent manifest of the backup's own shadow
(made here with os.lstat, not by vss; ACLs and extended attributes
too); damage found by verify and by restore; deletes that keep what later
backups need; a killed backup that leaves nothing listed; repositories
that are not repositories; a backup's shadow let go by vssd after the
backup returned, never while something still reads it (what reads it
named, a restart of vssd finishing the job, a volume delete waiting for
it)."""
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import threading
import time

import pytest

from conftest import VSS, connect, frame, loops_under, mounts_under, recv_frame
from test_fs import host_of_a_volume
from test_writers import TEST_WRITER, events


def tree_manifest(root):
    """Everything under @root as this test sees it: path -> what it is."""
    out, first = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [""] + sorted(dirnames + filenames):
            if name == "" and dirpath != root:
                continue
            path = os.path.join(dirpath, name) if name else dirpath
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            e = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                 "kind": stat.S_IFMT(st.st_mode),
                 "xattrs": {k: os.getxattr(path, k, follow_symlinks=False)
                            for k in sorted(os.listxattr(path, follow_symlinks=False))}}
            if not stat.S_ISLNK(st.st_mode):
                e["mtime"] = st.st_mtime_ns
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    e["sha"] = hashlib.sha256(f.read()).hexdigest()
                e["size"] = st.st_size
                if st.st_nlink > 1:
                    e["link_group"] = first.setdefault((st.st_dev, st.st_ino), rel)
            elif stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                e["rdev"] = st.st_rdev
            out[rel] = e
    return out


def diff(a, b):
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            lines.append("%s: %s != %s" % (k, a.get(k), b.get(k)))
    return "\n".join(lines[:20])


def blocks_of(path):
    return os.stat(path).st_blocks


def change(root, step):
    """One round of changes: created, changed, renamed, hard-linked,
    truncated, deleted, a symlink retargeted, attributes changed."""
    d = os.path.join(root, "dir%d" % step)
    os.makedirs(d)
    with open(os.path.join(d, "new"), "wb") as f:
        f.write(os.urandom(5000 + step))
    with open(os.path.join(root, "grows"), "ab") as f:
        f.write(b"step %d\n" % step)
    if step > 0 and os.path.exists(os.path.join(root, "dir%d" % (step - 1), "new")):
        os.rename(os.path.join(root, "dir%d" % (step - 1), "new"),
                  os.path.join(root, "dir%d" % (step - 1), "renamed"))
    os.link(os.path.join(d, "new"), os.path.join(root, "link%d" % step))
    with open(os.path.join(root, "shrinks"), "r+b") as f:
        f.truncate(max(0, 100000 - 1000 * step))
    if step % 2 and os.path.exists(os.path.join(root, "doomed")):
        os.unlink(os.path.join(root, "doomed"))
    elif not step % 2:
        with open(os.path.join(root, "doomed"), "wb") as f:
            f.write(b"back %d" % step)
    os.unlink(os.path.join(root, "sym"))
    os.symlink("target-%d" % step, os.path.join(root, "sym"))
    os.setxattr(os.path.join(root, "grows"), "user.step", b"%d" % step)
    os.chmod(os.path.join(root, "shrinks"), 0o600 + step % 8)


def acl(*entries):
    """A POSIX ACL as the kernel takes it in system.posix_acl_*: version 2,
    then (tag, permissions, id) entries, sorted (linux/posix_acl_xattr.h)."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in entries)


USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER, ANY = 1, 2, 4, 8, 0x10, 0x20, 0xFFFFFFFF


def populate(root):
    os.makedirs(os.path.join(root, "a/b/c"))
    for i in range(30):
        with open(os.path.join(root, "a/b/c/f%d" % i), "wb") as f:
            f.write(os.urandom(100 * i + 1))
    with open(os.path.join(root, "grows"), "wb") as f:
        f.write(b"start\n")
    with open(os.path.join(root, "shrinks"), "wb") as f:
        f.write(os.urandom(100000))
    with open(os.path.join(root, "sparse"), "wb") as f:
        f.seek(20 << 20)
        f.write(b"end")
        f.seek(4 << 20)
        f.write(b"middle")
    os.symlink("nowhere", os.path.join(root, "sym"))
    os.mkfifo(os.path.join(root, "fifo"))
    os.mknod(os.path.join(root, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.setxattr(os.path.join(root, "a"), "user.note", b"\x00\xffbinary")
    os.chown(os.path.join(root, "a/b"), 65534, 100)
    os.chmod(os.path.join(root, "a/b/c"), 0o2750)
    os.utime(os.path.join(root, "a/b/c/f3"), ns=(1_000_000_000, 2_000_000_123))
    # ACLs: a named user and group on a file, a default ACL on a directory.
    os.setxattr(os.path.join(root, "a/b/c/f1"), "system.posix_acl_access",
                acl((USER_OBJ, 6, ANY), (USER, 4, 65534), (GROUP_OBJ, 4, ANY), (GROUP, 6, 100),
                    (MASK, 6, ANY), (OTHER, 0, ANY)))
    os.makedirs(os.path.join(root, "shared"))
    os.setxattr(os.path.join(root, "shared"), "system.posix_acl_default",
                acl((USER_OBJ, 7, ANY), (USER, 5, 65534), (GROUP_OBJ, 5, ANY), (MASK, 5, ANY),
                    (OTHER, 0, ANY)))


def mounted(vssd, fstype):
    mnt = os.path.join(vssd.root, "mnt")
    vssd.create_volume("fs", "320M" if fstype == "xfs" else "160M")
    vssd.vss("volume", "mount", "fs", mnt, "--mkfs", fstype)
    return mnt


@pytest.fixture
def fsvol(vssd):
    return mounted(vssd, "ext4")


def backup(vssd, repo, mnt, type_):
    return vssd.json("backup", "create", "--to", repo, "--for", mnt, "--type", type_)


def restore(vssd, repo, bid, to):
    return vssd.json("restore", "--from", repo, bid, "--to", to)


class Busy:
    """A process's writes in ROOT/busy while backups run: a log appended to,
    a file made and the previous one deleted, a file renamed, in a loop."""

    def __init__(self, root):
        self.dir = os.path.join(root, "busy")
        os.makedirs(self.dir)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        open(os.path.join(self.dir, "a"), "wb").close()
        n = 0
        while not self.stop.is_set():
            with open(os.path.join(self.dir, "log"), "ab") as f:
                f.write(b"line %d\n" % n)
            with open(os.path.join(self.dir, "new-%d" % n), "wb") as f:
                f.write(os.urandom(100 + n % 3000))
            if n:
                os.unlink(os.path.join(self.dir, "new-%d" % (n - 1)))
            src, dst = ("a", "b") if n % 2 == 0 else ("b", "a")
            os.rename(os.path.join(self.dir, src), os.path.join(self.dir, dst))
            n += 1
            time.sleep(0.002)

    def end(self):
        self.stop.set()
        self.thread.join()


@pytest.mark.parametrize("fstype", ["ext4", "xfs"])
def test_chain_restores_each_instant(vssd, fstype, workdir):
    """A full, five incrementals, a differential and an incremental of a
    tree changed between them and written to all along (Busy): each restore is exactly the tree
    of its backup's shadow, as this test reads it from the shadow itself
    (a writer holds each backup at backup_complete meanwhile)."""
    fsvol = mounted(vssd, fstype)
    repo = os.path.join(workdir, "repo")
    populate(fsvol)
    os.makedirs(os.path.join(fsvol, "data"))
    log = os.path.join(workdir, "events")
    w = vssd.spawn([TEST_WRITER, "--run-dir", vssd.run, "--name", "w", "--log", log,
                    "--hang-at", "backup_complete", "--hang-again",
                    "--set", "%s/data:*:%#x:r" % (fsvol, 0xF00)],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert w.stdout.readline().strip() == "ready", w.stderr.read()
    busy = Busy(fsvol)
    refs, ids = [], []
    # The last incremental's base is the differential: the newest of any type.
    plan = ["full"] + ["incremental"] * 5 + ["differential", "incremental"]
    try:
        for step, type_ in enumerate(plan):
            if step:
                change(fsvol, step)
            b = vssd.spawn([VSS, "--run-dir", vssd.run, "backup", "create", "--to", repo,
                            "--for", fsvol, "--type", type_, "--quiet", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert wait_until(lambda: [e[:2] for e in events(log)].count(
                ["w", "backup_complete"]) == step + 1, 60), (events(log), b.poll())
            exposed = mounts_under(os.path.join(vssd.run, "exec"))
            assert len(exposed) == 1, exposed
            refs.append(tree_manifest(exposed[0]))
            w.send_signal(signal.SIGUSR1)
            out, errs = b.communicate(timeout=120)
            assert b.returncode == 0, errs
            b = json.loads(out)
            assert b["type"] == type_, b
            ids.append(b["id"])
            if type_ == "incremental":
                # Only what changed is read again: a handful (and busy/'s
                # three), not the 30 of a/b/c.
                assert b["files_stored"] <= 11, b
                if step >= 2:   # renamed (and from step 3 on, doomed) files are gone
                    assert b["deleted"] >= 1, b
                assert b["base"] == ids[-2]
            if type_ == "differential":
                assert b["base"] == ids[0]
    finally:
        busy.end()
    assert "system.posix_acl_access" in refs[0]["a/b/c/f1"]["xattrs"]
    assert "system.posix_acl_default" in refs[0]["shared"]["xattrs"]
    listed = vssd.json("backup", "list", "--in", repo)["backups"]
    assert [b["id"] for b in listed] == ids
    assert wait_until(lambda: vssd.shadows() == [])     # the sets are gone with the backups
    for n, (bid, ref) in enumerate(zip(ids, refs)):
        to = os.path.join(workdir, "r%d" % n)
        restore(vssd, repo, bid, to)
        got = tree_manifest(to + fsvol)
        assert got == ref, "backup %d (%s):\n%s" % (n, plan[n], diff(ref, got))
        assert any(k.startswith("busy/new-") for k in got), sorted(got)
    # Holes survive: the 20 MiB sparse file takes a few blocks.
    assert blocks_of(os.path.join(workdir, "r0") + fsvol + "/sparse") < 1024
    assert "Every stored byte" in vssd.vss("backup", "verify", "--in", repo).stdout


def test_restore_in_place_and_of_paths(vssd, fsvol, workdir):
    repo = os.path.join(workdir, "repo")
    populate(fsvol)
    os.sync()
    ref = tree_manifest(fsvol)
    bid = backup(vssd, repo, fsvol, "full")["id"]
    # Damage the live tree, then restore one subtree in place, then all.
    shutil.rmtree(os.path.join(fsvol, "a/b/c"))
    with open(os.path.join(fsvol, "grows"), "wb") as f:
        f.write(b"overwritten")
    os.unlink(os.path.join(fsvol, "sym"))
    vssd.vss("restore", "--from", repo, bid[:12], "--path", os.path.join(fsvol, "a/b/c"))
    got = tree_manifest(fsvol)
    assert got["grows"] != ref["grows"] and "sym" not in got   # untouched
    for k in ref:
        if k.startswith("a/b/c/"):
            assert got[k] == ref[k], k
    # What is not in the backup is left as it is.
    with open(os.path.join(fsvol, "extra"), "w") as f:
        f.write("made after the backup")
    vssd.vss("restore", "--from", repo)
    got = tree_manifest(fsvol)
    assert got.pop("extra")["size"] == 21
    ref["."].pop("mtime")
    got["."].pop("mtime")        # the root changed again: extra is in it
    assert got == ref, diff(ref, got)


def test_restore_does_not_follow_symlinks_out_of_the_tree(vssd, fsvol, workdir):
    repo = os.path.join(workdir, "repo")
    os.makedirs(os.path.join(fsvol, "d"))
    with open(os.path.join(fsvol, "d/file"), "wb") as f:
        f.write(b"from the backup")
    bid = backup(vssd, repo, fsvol, "full")["id"]
    # Someone replaces d with a symlink to a directory outside the tree.
    outside = os.path.join(workdir, "outside")
    os.makedirs(outside)
    shutil.rmtree(os.path.join(fsvol, "d"))
    os.symlink(outside, os.path.join(fsvol, "d"))
    r = vssd.vss("restore", "--from", repo, bid, check=False)
    assert r.returncode == 1, r.stdout
    assert os.listdir(outside) == []
    # The same when the symlink replaces the source itself.
    src = os.path.join(fsvol, "s")
    os.makedirs(src)
    with open(os.path.join(src, "file"), "wb") as f:
        f.write(b"from the backup")
    bid = vssd.json("backup", "create", "--to", repo, "--for", src)["id"]
    shutil.rmtree(src)
    os.symlink(outside, src)
    r = vssd.vss("restore", "--from", repo, bid, check=False)
    assert r.returncode == 1 and "symlink" in r.stderr, r.stderr
    assert os.listdir(outside) == []


def test_damage_is_found_and_named(vssd, fsvol, workdir):
    repo = os.path.join(workdir, "repo")
    populate(fsvol)
    bid = backup(vssd, repo, fsvol, "full")["id"]
    stored = os.path.join(repo, "backups", bid, "data", "1", "a/b/c/f7")
    with open(stored, "r+b") as f:
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 1]))
    r = vssd.vss("backup", "verify", "--in", repo, check=False)
    assert r.returncode == 1 and "a/b/c/f7" in r.stderr, r.stderr
    to = os.path.join(workdir, "r")
    r = vssd.vss("restore", "--from", repo, bid, "--to", to, check=False)
    assert r.returncode == 1 and "a/b/c/f7" in r.stderr and "checksum" in r.stderr, r.stderr
    assert not os.path.exists(to + fsvol + "/a/b/c/f7")
    # A damaged manifest is refused before anything is read from it.
    with open(os.path.join(repo, "backups", bid, "manifest.jsonl"), "ab") as f:
        f.write(b'{"s": 1, "p": "../../etc/passwd", "k": "f"}\n')
    r = vssd.vss("restore", "--from", repo, bid, "--to", to, check=False)
    assert r.returncode == 1 and "manifest" in r.stderr, r.stderr


def test_delete_keeps_what_later_backups_need(vssd, fsvol, workdir):
    repo = os.path.join(workdir, "repo")
    populate(fsvol)
    full = backup(vssd, repo, fsvol, "full")["id"]
    change(fsvol, 1)
    inc = backup(vssd, repo, fsvol, "incremental")["id"]
    copy = backup(vssd, repo, fsvol, "copy")["id"]
    r = vssd.vss("backup", "delete", "--in", repo, full, check=False)
    assert r.returncode == 1 and inc in r.stderr and "--with-dependents" in r.stderr
    vssd.vss("backup", "delete", "--in", repo, copy)   # nothing needs a copy
    assert "Deleted 2 backups" in vssd.vss("backup", "delete", "--in", repo, full,
                                           "--with-dependents").stdout
    assert vssd.json("backup", "list", "--in", repo)["backups"] == []
    assert os.listdir(os.path.join(repo, "tmp")) == []
    # With nothing to be relative to, an incremental is a full, and says so.
    b = backup(vssd, repo, fsvol, "incremental")
    assert b["type"] == "full" and b["base"] is None


def test_a_killed_backup_leaves_nothing_listed(vssd, fsvol, workdir):
    repo = os.path.join(workdir, "repo")
    with open(os.path.join(fsvol, "big"), "wb") as f:
        for _ in range(96):
            f.write(os.urandom(1 << 20))
    os.sync()
    p = subprocess.Popen([VSS, "--run-dir", vssd.run, "backup", "create", "--to", repo,
                          "--for", fsvol], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Killed while it copies (its temporary backup exists).
    deadline = time.time() + 60
    while time.time() < deadline and not (os.path.isdir(os.path.join(repo, "tmp")) and
                                          os.listdir(os.path.join(repo, "tmp"))):
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert vssd.json("backup", "list", "--in", repo)["backups"] == []
    b = backup(vssd, repo, fsvol, "full")
    assert os.listdir(os.path.join(repo, "tmp")) == []
    assert [x["id"] for x in vssd.json("backup", "list", "--in", repo)["backups"]] == [b["id"]]
    # vssd took the killed requester's set back.
    deadline = time.time() + 10
    while vssd.shadows() and time.time() < deadline:
        time.sleep(0.1)
    assert vssd.shadows() == []


def wait_until(what, limit=20):
    deadline = time.time() + limit
    while not what() and time.time() < deadline:
        time.sleep(0.05)
    return what()


def delete_detached(vssd, set_id):
    """shadow.delete of a set with "detach", as the requester library ends
    a backup's set; returns the reply."""
    s = connect(vssd)
    try:
        s.sendall(frame({"version": 1, "id": 1, "op": "shadow.delete",
                         "args": {"set": set_id, "detach": True}}))
        return recv_frame(s)
    finally:
        s.close()


def test_the_shadow_goes_after_the_backup_returns_never_while_read(vssd, fsvol, workdir):
    """vss backup create returns before vssd lets the shadow's filesystem go
    (shadow.delete with "detach", retire.c): once it has returned nothing is
    listed or mounted, the next backup and a delete work at once, and the
    shadow's loop device goes soon after.  A shadow whose filesystem is
    still read when its set is deleted so stays until that stops."""
    repo = os.path.join(workdir, "repo")
    shadows_dev = os.path.join(vssd.run, "dev", "shadows")
    populate(fsvol)
    first = backup(vssd, repo, fsvol, "full")
    assert vssd.shadows() == []
    assert mounts_under(os.path.join(vssd.run, "exec")) == []
    with open(os.path.join(fsvol, "grows"), "ab") as f:
        f.write(b"more")
    second = backup(vssd, repo, fsvol, "incremental")
    assert second["type"] == "incremental" and second["files_stored"] >= 1
    vssd.vss("backup", "delete", "--in", repo, second["id"])
    assert [b["id"] for b in vssd.json("backup", "list", "--in", repo)["backups"]] == \
        [first["id"]]
    assert vssd.shadows() == []
    assert wait_until(lambda: loops_under(shadows_dev) == []), loops_under(shadows_dev)
    assert vssd.log().count("once unmounted") == 2

    # A set whose shadow is read (a file open in it) when it is deleted.
    set_ = vssd.shadow(fsvol)
    sid = set_["shadows"][0]["id"]
    exp = os.path.join(workdir, "exp")
    vssd.vss("expose", sid, exp)
    held = open(os.path.join(exp, "grows"), "rb")
    try:
        r = delete_detached(vssd, set_["set"])
        assert r["ok"] and r["result"]["deleted"] == 1 and r["result"]["later"] == 1, r
        assert mounts_under(exp) == []
        # Kept, and listed as being deleted, while the file is open.
        assert wait_until(lambda: [x["state"] for x in vssd.shadows()] == ["deleting"]), \
            vssd.shadows()
        assert loops_under(shadows_dev) != []
        assert held.read().endswith(b"more")
        r = vssd.vss("delete", "shadows", "--set", set_["set"], check=False)
        assert r.returncode != 0            # already being deleted
    finally:
        held.close()
    assert wait_until(lambda: vssd.shadows() == [] and loops_under(shadows_dev) == []), \
        (vssd.shadows(), loops_under(shadows_dev))
    assert "once its filesystem was no longer in use" in vssd.log()


def backup_read_meanwhile(vssd, fsvol, repo):
    """A backup during which this process opens a file in the backup's own
    exposed shadow (a test writer holds the set at backup_complete meanwhile),
    kept open after the backup returned: returns the open file."""
    os.makedirs(os.path.join(fsvol, "data"))
    with open(os.path.join(fsvol, "data", "f"), "wb") as f:
        f.write(b"data")
    log = os.path.join(vssd.root, "events")
    w = vssd.spawn([TEST_WRITER, "--run-dir", vssd.run, "--name", "w", "--log", log,
                    "--hang-at", "backup_complete", "--set", "%s/data:*:%#x:r" % (fsvol, 0xF0F)],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert w.stdout.readline().strip() == "ready", w.stderr.read()
    b = vssd.spawn([VSS, "--run-dir", vssd.run, "backup", "create", "--to", repo, "--for", fsvol,
                    "--quiet", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: ["w", "backup_complete"] in [e[:2] for e in events(log)]), \
        (events(log), vssd.log())
    exposed = mounts_under(os.path.join(vssd.run, "exec"))
    assert len(exposed) == 1, exposed
    held = open(os.path.join(exposed[0], "grows"), "rb")
    w.send_signal(signal.SIGUSR1)
    out, errs = b.communicate(timeout=60)
    assert b.returncode == 0, errs
    assert json.loads(out)["files_stored"] >= 1
    return held


def bound(loop):
    """Whether the loop device @loop still reads a file (from its last
    vssd's device tree, whose path it may no longer show under our run
    directory once that tree is gone)."""
    return os.path.exists("/sys/block/%s/loop/backing_file" % os.path.basename(loop))


def holders(vssd):
    return [(x["state"], [(h["pid"], h["command"]) for h in x["held_by"]])
            for x in vssd.shadows()]


def test_a_reader_of_a_backups_shadow_is_named_and_a_restart_finishes(vssd, fsvol, workdir):
    """A file opened in the backup's own shadow while it runs, kept open
    after vss backup create returned: the shadow is listed "deleting", with
    this process named as what uses it, and goes once the file is closed;
    vssd killed with -9 meanwhile leaves nothing at its next start (the
    shadow dropped, its loop device gone once the file is closed)."""
    repo = os.path.join(workdir, "repo")
    shadows_dev = os.path.join(vssd.run, "dev", "shadows")
    me = (os.getpid(), open("/proc/self/comm").read().strip())
    populate(fsvol)
    held = backup_read_meanwhile(vssd, fsvol, repo)
    try:
        assert wait_until(lambda: holders(vssd) == [("deleting", [me])]), holders(vssd)
        assert "by PID %d (%s)" % me in vssd.log()
        table = vssd.vss("list", "shadows").stdout
        assert "deleting" in table, table
        assert held.read() == b"start\n"
        loops = loops_under(shadows_dev)
        assert len(loops) == 1, loops
        vssd.kill9()
        vssd.start()
        assert vssd.shadows() == []
        assert vssd.volume("fs")["shadows"] == 0
        assert "is still in use (by PID %d (%s)" % me in vssd.log()
        assert bound(loops[0])                      # this process still uses it
    finally:
        held.close()
    assert wait_until(lambda: not bound(loops[0])), loops
    with open(os.path.join(fsvol, "grows"), "ab") as f:
        f.write(b"after")
    assert backup(vssd, repo, fsvol, "incremental")["files_stored"] >= 1
    assert wait_until(lambda: vssd.shadows() == [] and loops_under(shadows_dev) == [])


def test_a_shadow_read_past_hold_max_is_deleted_anyway(daemon_factory, workdir):
    """A shadow still read after its set was deleted does not keep its diff
    area growing forever: after vssd's --hold-max it is deleted anyway,
    what read it named in the log.  The reader here holds the shadow's
    loop device itself, not a file in its filesystem."""
    vssd = daemon_factory(args=["--hold-lease", "1", "--hold-max", "2"])
    me = open("/proc/self/comm").read().strip()
    mnt = mounted(vssd, "ext4")
    shadows_dev = os.path.join(vssd.run, "dev", "shadows")
    populate(mnt)
    set_ = vssd.shadow(mnt)
    exp = os.path.join(workdir, "exp")
    vssd.vss("expose", set_["shadows"][0]["id"], exp)
    loops = loops_under(shadows_dev)
    assert len(loops) == 1, loops
    held = open(loops[0], "rb")
    try:
        r = delete_detached(vssd, set_["set"])
        assert r["ok"] and r["result"]["later"] == 1, r
        assert wait_until(lambda: holders(vssd) == [("deleting", [(os.getpid(), me)])]), \
            holders(vssd)
        assert wait_until(lambda: vssd.shadows() == [], 10), vssd.shadows()
        assert "was still in use after --hold-max (2 s), by PID %d (" % os.getpid() \
            in vssd.log()
    finally:
        held.close()
    assert wait_until(lambda: not any(bound(x) for x in loops)), loops


def waits_for_the_close(vssd, held, *args):
    """vss ARGS, started while @held keeps a shadow being deleted: still
    waiting 0.5 s later; succeeds once @held is closed (here)."""
    try:
        p = vssd.spawn([VSS, "--run-dir", vssd.run] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        assert p.poll() is None, p.communicate()
    finally:
        held.close()
    out, errs = p.communicate(timeout=30)
    assert p.returncode == 0, errs


def test_volume_delete_right_after_a_backup_waits_for_its_shadow(vssd, fsvol, workdir):
    """backup create, then vss add shadowstorage (a move) or volume delete:
    they wait for the backup's shadow to be let go in the background; when something still uses it
    after the bound (5 s), the refusal names that process, and a delete
    that waits while it lets go succeeds."""
    repo = os.path.join(workdir, "repo")
    shadows_dev = os.path.join(vssd.run, "dev", "shadows")
    populate(fsvol)
    # Moving the diff area waits too: a set deleted with "detach" (as a
    # backup's) while a file of its exposed shadow is open, closed meanwhile.
    set_ = vssd.shadow(fsvol)
    exp, store = os.path.join(workdir, "exp"), os.path.join(workdir, "store")
    os.makedirs(store)
    vssd.vss("expose", set_["shadows"][0]["id"], exp)
    with open(os.path.join(exp, "grows"), "rb") as held:
        assert delete_detached(vssd, set_["set"])["ok"]
        waits_for_the_close(vssd, held, "add", "shadowstorage", "--for", "fs", "--on", store)
    assert vssd.volume("fs")["diff_area"].startswith(store + "/")
    # The script: backup, unmount, delete.
    backup(vssd, repo, fsvol, "full")
    vssd.vss("volume", "umount", "fs")
    vssd.vss("volume", "delete", "fs")
    assert vssd.shadows() == []

    vssd.create_volume("fs", "160M")
    vssd.vss("volume", "mount", "fs", fsvol, "--mkfs", "ext4")
    populate(fsvol)
    with backup_read_meanwhile(vssd, fsvol, os.path.join(workdir, "repo2")) as held:
        vssd.vss("volume", "umount", "fs")
        r = vssd.vss("volume", "delete", "fs", check=False)
        assert r.returncode == 1, r
        assert "still in use through its detached mount after 5 s, by PID %d (" % os.getpid() \
            in r.stderr, r.stderr
        waits_for_the_close(vssd, held, "volume", "delete", "fs")
    assert vssd.json("volume", "list")["volumes"] == []
    assert wait_until(lambda: loops_under(shadows_dev) == []), loops_under(shadows_dev)


def test_not_a_repository(vssd, fsvol, workdir):
    other = os.path.join(workdir, "other")
    os.makedirs(other)
    with open(os.path.join(other, "precious"), "w") as f:
        f.write("keep me")
    r = vssd.vss("backup", "create", "--to", other, "--for", fsvol, check=False)
    assert r.returncode == 1 and "not a vss backup repository" in r.stderr, r.stderr
    assert os.listdir(other) == ["precious"]
    r = vssd.vss("backup", "list", "--in", os.path.join(workdir, "missing"), check=False)
    assert r.returncode == 1, r.stderr
    r = vssd.vss("restore", "--from", other, check=False)
    assert r.returncode == 1 and "not a vss backup repository" in r.stderr, r.stderr
    r = vssd.vss("backup", "create", "--to", other, "--type", "nosuch", check=False)
    assert r.returncode == 2, r.stderr


def on_a_terminal(vssd, *args):
    """Runs vss with its standard error on a pseudo-terminal: (exit code,
    what it wrote there)."""
    import pty
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([VSS, "--run-dir", vssd.run] + list(args),
                             stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:     # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
        return p.wait(60), out.decode()
    finally:
        os.close(master)


def test_progress_on_a_terminal_unless_quiet(vssd, fsvol, workdir):
    repo, to = os.path.join(workdir, "repo"), os.path.join(workdir, "to")
    populate(fsvol)
    os.sync()
    rc, err = on_a_terminal(vssd, "backup", "create", "--to", repo, "--for", fsvol)
    # Counted first: files and bytes done of the totals, the rate, the time.
    assert rc == 0 and re.search(r"\r(\d+)/\1 files, [^/]+/[^,]+, [^,]+/s, \d+ s\r?\n", err), err
    rc, err = on_a_terminal(vssd, "backup", "create", "--to", repo, "--for", fsvol, "--quiet")
    assert rc == 0 and err == "", err
    rc, err = on_a_terminal(vssd, "restore", "--from", repo, "--to", to)
    assert rc == 0 and re.search(r"\r\d+(/\d+)? files, .*/s, \d+ s\r?\n", err), err
    rc, err = on_a_terminal(vssd, "restore", "--from", repo, "--to", to + "2", "-q")
    assert rc == 0 and err == "", err
    # Image backups too: bytes read of the volume's.
    rc, err = on_a_terminal(vssd, "backup", "create", "--image", "--to", repo + "-img",
                            "--for", "fs")
    assert rc == 0 and re.search(r"\r[^\r]+/[^\r]+, [^,]+/s, \d+ s\r?\n", err), err


def test_allow_live_reads_a_failing_member_live_and_says_so(vssd, workdir):
    """A target whose provider fails at prepare (vss-cow refuses to freeze a
    filesystem holding another volume's backing file, as in test_fs.py):
    refused without --allow-live, read live with it, reported for that
    member (a warning, JSON) and kept with the backup for `backup show` and
    `backup list`."""
    mnt, repo = host_of_a_volume(vssd, "64M", 4 << 20), os.path.join(workdir, "repo")
    os.makedirs(os.path.join(mnt, "d"))
    with open(os.path.join(mnt, "d", "kept"), "w") as f:
        f.write("live")
    try:
        r = vssd.vss("backup", "create", "--to", repo, "--for", mnt, "--no-writers",
                     check=False)
        assert r.returncode == 1 and "refusing to freeze" in r.stderr, r.stderr
        assert vssd.json("backup", "list", "--in", repo)["backups"] == []
        r = vssd.vss("backup", "create", "--to", repo, "--for", mnt, "--no-writers",
                     "--allow-live", "--json")
        b = json.loads(r.stdout)
        assert "vss: warning: " + mnt + ": provider vss-cow failed at prepare" in r.stderr
        assert b["sources"] == [mnt] and len(b["live"]) == 1
        assert "provider vss-cow failed at prepare" in b["live"][0]
        assert "refusing to freeze" in b["live"][0]
        shown = vssd.json("backup", "show", "--in", repo, b["id"])
        assert shown["live"] == b["live"]
        text = vssd.vss("backup", "show", "--in", repo, b["id"]).stdout
        assert "read live, not from a shadow: " + mnt + ": provider vss-cow" in text, text
        to = os.path.join(workdir, "to")
        vssd.vss("restore", "--from", repo, b["id"], "--to", to, "--path",
                 os.path.join(mnt, "d"))
        assert open(os.path.join(to + mnt, "d", "kept")).read() == "live"
        # Once nothing keeps it from a shadow, it is read from one: no
        # reason, none shown.
        vssd.vss("volume", "delete", "inner")
        r = vssd.vss("backup", "create", "--to", repo, "--for", mnt, "--no-writers",
                     "--allow-live", "--json")
        b2 = json.loads(r.stdout)
        assert b2["live"] == [None] and "warning" not in r.stderr, r.stderr
        assert vssd.json("backup", "show", "--in", repo, b2["id"])["live"] == [None]
        assert "read live" not in vssd.vss("backup", "show", "--in", repo, b2["id"]).stdout
        # A target no provider can shadow at all (a tmpfs) is said to be too.
        tmp = small_fs(workdir, "tmp", "1M")
        r = vssd.vss("backup", "create", "--to", repo, "--for", mnt, "--for", tmp,
                     "--no-writers", "--allow-live", "--json")
        b3 = json.loads(r.stdout)
        assert b3["live"][0] is None and "no provider can shadow it" in b3["live"][1]
        assert "vss: warning: %s: no provider can shadow it" % tmp in r.stderr, r.stderr
        # backup list --json says it of each backup, as show does.
        listed = vssd.json("backup", "list", "--in", repo)["backups"]
        assert [(x["id"], x["sources"], x["live"]) for x in listed] == [
            (b["id"], [mnt], b["live"]), (b2["id"], [mnt], [None]),
            (b3["id"], [mnt, tmp], b3["live"])], listed
        assert vssd.shadows() == []
    finally:
        vssd.vss("volume", "delete", "inner", "--force", check=False)


def small_fs(workdir, name, size):
    """A tmpfs of @size mounted at WORKDIR/@name (the workdir fixture
    unmounts it): a place that fills."""
    path = os.path.join(workdir, name)
    os.makedirs(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "vsstest", path],
                   check=True)
    return path


def test_a_full_repository_fails_cleanly_and_the_next_backup_works(vssd, fsvol, workdir):
    """The repository's filesystem fills in the middle of a backup: the
    backup fails naming the repository and ENOSPC, nothing lists, tmp/ is
    empty, the volume is not left frozen, no shadow or exposure stays; once
    there is room the next backup works."""
    from test_fs import write_returns
    repo = os.path.join(small_fs(workdir, "small", "2M"), "repo")
    populate(fsvol)
    with open(os.path.join(fsvol, "big"), "wb") as f:
        f.write(os.urandom(6 << 20))
    os.sync()
    r = vssd.vss("backup", "create", "--to", repo, "--for", fsvol, check=False)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("vss: error: ") and len(r.stderr.splitlines()) == 1, r.stderr
    assert "the repository %s is full" % repo in r.stderr, r.stderr
    assert "No space left on device" in r.stderr, r.stderr
    assert vssd.json("backup", "list", "--in", repo)["backups"] == []
    assert os.listdir(os.path.join(repo, "tmp")) == []
    assert write_returns(os.path.join(fsvol, "after"), 5), "the volume stayed frozen"
    assert vssd.shadows() == []
    assert mounts_under(os.path.join(vssd.run, "exec")) == []   # nothing exposed
    assert vssd.json("status")["backup"] is None
    subprocess.run(["mount", "-o", "remount,size=64M", os.path.dirname(repo)], check=True)
    b = vssd.json("backup", "create", "--to", repo, "--for", fsvol)
    assert [x["id"] for x in vssd.json("backup", "list", "--in", repo)["backups"]] == [b["id"]]
    assert "Every stored byte" in vssd.vss("backup", "verify", "--in", repo).stdout


def test_a_full_destination_fails_a_restore_cleanly_and_the_next_works(vssd, fsvol, workdir):
    """Restoring into a filesystem that fills: the restore fails naming the
    destination and ENOSPC; each file is either the good one it replaces,
    untouched, or the backup's, whole (written under a temporary name and
    renamed), and no temporary file stays; once there is room the same
    restore gives the backup's tree."""
    names = ["f%02d" % i for i in range(12)]
    for n in names:
        with open(os.path.join(fsvol, n), "wb") as f:
            f.write(os.urandom(256 << 10))
    os.sync()
    repo = os.path.join(workdir, "repo")
    b = backup(vssd, repo, fsvol, "full")
    want = tree_manifest(fsvol)
    to = small_fs(workdir, "small", "2M")
    dest = to + fsvol
    os.makedirs(dest)
    old = {}
    for n in names:
        old[n] = os.urandom(64 << 10)
        with open(os.path.join(dest, n), "wb") as f:
            f.write(old[n])
    r = vssd.vss("restore", "--from", repo, b["id"], "--to", to, check=False)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("vss: error: ") and len(r.stderr.splitlines()) == 1, r.stderr
    assert "the destination %s is full" % to in r.stderr, r.stderr
    assert "No space left on device" in r.stderr, r.stderr
    assert sorted(os.listdir(dest)) == names, os.listdir(dest)   # no temporary file
    replaced = 0
    for n in names:
        with open(os.path.join(dest, n), "rb") as f:
            got = f.read()
        if got != old[n]:
            assert hashlib.sha256(got).hexdigest() == want[n]["sha"], n + ": half-written"
            replaced += 1
    assert 0 < replaced < len(names), replaced
    subprocess.run(["mount", "-o", "remount,size=64M", to], check=True)
    vssd.vss("restore", "--from", repo, b["id"], "--to", to)
    assert diff(tree_manifest(dest), want) == ""
