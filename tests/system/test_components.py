"""Writers' components in file-level backups (vss backup create --component,
doc/backup-format.md "Components"), with the real vssd and writers on the
writer library (tests/system/test_writer.c): each file-spec mask, stamps
that come back as the previous ones, partial files restored to the right
bytes, differenced files with and without a time, a writer that does not
mix incrementals and differentials, a writer with full backups only, the
components' volumes as the set when no target is given, refusals that name
the writer and the path, vss exec --components, and the SQLite writer while
a program commits.  Every restore is compared with a record this test made
of the tree at the backup's instant (os.lstat and sha256, not vss)."""
import hashlib
import json
import os
import subprocess
import time

import pytest

from test_writers import TEST_WRITER, Client, events, start_committing

# VSS_BS_* and VSS_FSBT_* (include/vss/writer_doc.h)
BS_DIFFERENTIAL, BS_INCREMENTAL, BS_EXCLUSIVE, BS_LOG = 0x1, 0x2, 0x4, 0x8
BS_TIMESTAMPED, BS_LAST_MODIFY = 0x20, 0x40
FULL_REQ, DIFF_REQ, INCR_REQ = 0x1, 0x2, 0x4
ALL_REQ = 0xF
ALL_SNAP = 0xF00


@pytest.fixture
def mnt(vssd):
    m = os.path.join(vssd.root, "mnt")
    vssd.create_volume("fs", "96M")
    vssd.vss("volume", "mount", "fs", m, "--mkfs", "ext4")
    return m


def start(d, name, *extra):
    log = os.path.join(d.root, "events-" + name)
    p = d.spawn([TEST_WRITER, "--run-dir", d.run, "--name", name, "--log", log,
                 "--detail", "--stamp", "auto"] + list(extra),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready", p.stderr.read()
    return log


def prepares(log):
    """Each prepare_backup the writer got: {"type", "partial", "previous", "stamp"}."""
    out = []
    for e in events(log):
        if e[1] != "prepare_backup":
            continue
        kv = dict(x.split("=", 1) for x in e[2:])
        out.append(kv)
    return out


def record(root, skip=()):
    """The regular files under @root: relative path -> sha256."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, root)
            if not any(rel.startswith(s) for s in skip):
                with open(p, "rb") as fh:
                    out[rel] = hashlib.sha256(fh.read()).hexdigest()
    return out


def create(d, repo, *args):
    return d.json("backup", "create", "--to", repo, *args)


def restored(d, repo, bid, to, root):
    d.vss("restore", "--from", repo, bid, "--to", to)
    return record(to + root)


def write(path, data, mode="wb", at=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        if at is not None:
            f.seek(at)
        f.write(data)


def test_masks_stamps_partial_and_differenced(vssd, mnt, workdir):
    repo = os.path.join(workdir, "repo")
    pf, df = os.path.join(workdir, "partial"), os.path.join(workdir, "differenced")
    big = os.path.join(mnt, "db", "big.db")
    write(big, os.urandom(1 << 20))
    for d in ("all", "fullonly", "none", "logs", "logs2", "other"):
        write(os.path.join(mnt, d, "f0"), os.urandom(3000))
    write(os.path.join(mnt, "tmp", "t.tmp"), b"scratch")
    old = time.time() - 1000
    for n in ("logs/f0", "logs2/f0"):
        os.utime(os.path.join(mnt, n), (old, old))
    log = start(vssd, "w", "--schema", hex(BS_INCREMENTAL | BS_DIFFERENTIAL | BS_TIMESTAMPED |
                                            BS_LAST_MODIFY),
                "--set", "%s/db:*.db:%#x" % (mnt, FULL_REQ | ALL_SNAP),
                "--set", "%s/all:*:%#x:r" % (mnt, ALL_REQ | ALL_SNAP),
                "--set", "%s/fullonly:*:%#x:r" % (mnt, FULL_REQ | ALL_SNAP),
                "--set", "%s/none:*:%#x:r" % (mnt, ALL_SNAP),
                "--set", "%s/logs:*:%#x" % (mnt, FULL_REQ),
                "--set", "%s/logs2:*:%#x" % (mnt, FULL_REQ),
                "--exclude", "%s/tmp:*.tmp" % mnt,
                "--partial-from", pf, "--differenced-from", df, "--shutdown")
    os.sync()
    refs, ids = [], []
    # The full: "none" is not needed for a full, tmp/*.tmp never.
    refs.append(record(mnt, skip=("none/", "tmp/", "lost+found")))
    b = create(vssd, repo, "--for", mnt)
    ids.append(b["id"])
    assert [c["type"] for c in b["components"]] == ["full"]
    # An incremental: 4 KiB of big.db rewritten and named as partial; a
    # log's mode changed (not modified since the writer's time); another
    # log rewritten (differenced, no time: the repository's record).
    write(big, os.urandom(4096), "r+b", at=65536)
    with open(pf, "w") as f:
        f.write("%s big.db 65536 4096\n" % os.path.dirname(big))
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 500))
    with open(df, "w") as f:
        f.write("%s/logs * 0 %s\n%s/logs2 * 0 -\n" % (mnt, since, mnt))
    os.chmod(os.path.join(mnt, "logs/f0"), 0o600)
    write(os.path.join(mnt, "logs2", "f0"), b"rewritten")
    write(os.path.join(mnt, "other", "f1"), b"not a component's")
    os.sync()
    refs.append(record(mnt, skip=("tmp/", "lost+found")))
    b = create(vssd, repo, "--for", mnt, "--type", "incremental")
    ids.append(b["id"])
    assert b["base"] == ids[0] and [c["type"] for c in b["components"]] == ["incremental"]
    with open(os.path.join(repo, "backups", b["id"], "manifest.jsonl")) as f:
        m = {e["p"]: e for e in map(json.loads, f)}
    stored = {p for p, e in m.items() if e.get("in") == b["id"]}
    # all: backup required, whatever changed; fullonly: unchanged, kept;
    # none: not in the base, so changed; logs/f0: not since the time.
    assert {"all/f0", "none/f0", "logs2/f0", "other/f1", "db/big.db"} <= stored, stored
    assert not {"fullonly/f0", "logs/f0", "other/f0"} & stored, stored
    assert "tmp/t.tmp" not in m
    assert m["db/big.db"]["c"] == m["all/f0"]["c"] == 1 and "c" not in m["other/f0"]
    layers = m["db/big.db"]["layers"]
    assert [l["in"] for l in layers] == ids and layers[1]["ranges"] == [[65536, 4096]]
    # Only the range is stored: 4 KiB of a 1 MiB file.
    st = os.stat(os.path.join(repo, "backups", b["id"], "data", "1", "db", "big.db"))
    assert st.st_size == 1 << 20 and st.st_blocks * 512 <= 16384
    # An incremental where nothing was named, and a differential.
    os.unlink(pf)
    os.unlink(df)
    refs.append(record(mnt, skip=("tmp/", "lost+found")))
    ids.append(create(vssd, repo, "--for", mnt, "--type", "incremental")["id"])
    b = create(vssd, repo, "--for", mnt, "--type", "differential")
    assert b["base"] == ids[0]
    ids.append(b["id"])
    refs.append(refs[-1])
    # Each stamp came back as the next backup's previous one (a
    # differential: the full's); the writer could ask about partial files.
    got = prepares(log)
    assert [p["previous"] for p in got] == ["-", "w-1", "w-2", "w-1"], got
    # Each backup ended with backup_shutdown, after backup_complete.
    seq = [e[1] for e in events(log)]
    assert seq.count("backup_shutdown") == 4 and seq[-2:] == ["backup_complete",
                                                              "backup_shutdown"], seq
    assert all(p["partial"] == "1" for p in got), got
    # Each backup restores to the instant the writer needed.
    for n, (bid, ref) in enumerate(zip(ids, refs)):
        got = restored(vssd, repo, bid, os.path.join(workdir, "r%d" % n), mnt)
        got.pop("tmp/t.tmp", None)
        assert got == ref, "backup %d: %s" % (n, sorted(set(got.items()) ^ set(ref.items())))
    assert "Every stored byte" in vssd.vss("backup", "verify", "--in", repo).stdout


def test_log_backups_take_only_log_files_and_apply_in_order(vssd, mnt, workdir):
    """A log backup stores only the files of its writers' log file sets
    changed since the previous backup; restoring it gives the tree of the
    chain before it with the logs as they were at its instant (full, then
    each log backup, in order), and an incremental after it takes the rest."""
    repo = os.path.join(workdir, "repo")
    write(os.path.join(mnt, "db", "data.db"), os.urandom(8192))
    write(os.path.join(mnt, "wal", "0000"), os.urandom(3000))
    write(os.path.join(mnt, "other", "p"), b"plain, no writer's")
    log = start(vssd, "pg", "--schema", hex(BS_INCREMENTAL | BS_DIFFERENTIAL | BS_LOG),
                "--set", "%s/db:*.db:%#x" % (mnt, ALL_REQ | ALL_SNAP),
                "--set", "%s/wal:*:%#x:r:log" % (mnt, FULL_REQ), "--detail")
    os.sync()
    skip = ("lost+found",)
    full_ref = record(mnt, skip)
    full = create(vssd, repo, "--for", mnt)
    # Without a base a log backup is made full; here it has the full.
    write(os.path.join(mnt, "db", "data.db"), os.urandom(8192))
    write(os.path.join(mnt, "wal", "0000"), os.urandom(100), "ab")
    write(os.path.join(mnt, "wal", "0001"), os.urandom(2000))
    write(os.path.join(mnt, "other", "p"), b"changed, but no log")
    write(os.path.join(mnt, "other", "new"), b"new, but no log")
    os.sync()
    now = record(mnt, skip)
    log1 = create(vssd, repo, "--for", mnt, "--type", "log")
    assert log1["type"] == "log" and log1["base"] == full["id"], log1
    assert [c["type"] for c in log1["components"]] == ["log"]
    assert log1["files_stored"] == 2, log1
    with open(os.path.join(repo, "backups", log1["id"], "manifest.jsonl")) as f:
        m = {e["p"]: e for e in map(json.loads, f)}
    stored = {p for p, e in m.items() if e.get("in") == log1["id"]}
    assert stored == {"wal/0000", "wal/0001"}, stored
    assert m["db/data.db"]["in"] == m["other/p"]["in"] == full["id"]
    assert "other/new" not in m
    # Its restore: the full's tree, the logs as they are now.
    want1 = {k: v for k, v in full_ref.items() if not k.startswith("wal/")}
    want1.update({k: v for k, v in now.items() if k.startswith("wal/")})
    assert restored(vssd, repo, log1["id"], os.path.join(workdir, "r1"), mnt) == want1
    # A log deleted and another written: the next log backup's base is the
    # first, and its restore applies both in order.
    os.unlink(os.path.join(mnt, "wal", "0000"))
    write(os.path.join(mnt, "wal", "0002"), os.urandom(500))
    os.sync()
    now = record(mnt, skip)
    log2 = create(vssd, repo, "--for", mnt, "--type", "log")
    assert log2["base"] == log1["id"] and log2["files_stored"] == 1 and log2["deleted"] == 1
    want2 = {k: v for k, v in want1.items() if not k.startswith("wal/")}
    want2.update({k: v for k, v in now.items() if k.startswith("wal/")})
    assert restored(vssd, repo, log2["id"], os.path.join(workdir, "r2"), mnt) == want2
    # An incremental after them takes what they left: the database and the
    # plain files; its restore is the tree now.
    incr = create(vssd, repo, "--for", mnt, "--type", "incremental")
    assert incr["base"] == log2["id"]
    with open(os.path.join(repo, "backups", incr["id"], "manifest.jsonl")) as f:
        m = {e["p"]: e for e in map(json.loads, f)}
    stored = {p for p, e in m.items() if e.get("in") == incr["id"]}
    assert {"db/data.db", "other/p", "other/new"} <= stored and "wal/0001" not in stored
    assert restored(vssd, repo, incr["id"], os.path.join(workdir, "r3"), mnt) == now
    # The writer was told each backup's type.
    assert [p["type"] for p in prepares(log)] == ["1", "4", "4", "2"]  # VSS_BT_*
    assert "Every stored byte" in vssd.vss("backup", "verify", "--in", repo).stdout
    # An image backup has no log files: a usage error.
    r = vssd.vss("backup", "create", "--to", repo, "--for", mnt, "--type", "log",
                 "--image", check=False)
    assert r.returncode == 2


def test_log_backup_with_nothing_to_take_is_refused(vssd, mnt, workdir):
    """A log backup that could only be its base again: without writers, or
    when no selected component has a log file set.  A usage error (exit 2),
    nothing made, no set left behind."""
    repo = os.path.join(workdir, "repo")
    write(os.path.join(mnt, "db", "data.db"), os.urandom(4096))
    start(vssd, "nolog", "--schema", hex(BS_INCREMENTAL),
          "--set", "%s/db:*.db:%#x" % (mnt, ALL_REQ))
    os.sync()
    full = create(vssd, repo, "--for", mnt)
    r = vssd.vss("backup", "create", "--to", repo, "--for", mnt, "--type", "log",
                 "--no-writers", check=False)
    assert r.returncode == 2 and "not with --no-writers" in r.stderr, r.stderr
    r = vssd.vss("backup", "create", "--to", repo, "--for", mnt, "--type", "log",
                 check=False)
    assert r.returncode == 2, r.stderr
    assert "none of the selected components has one" in r.stderr, r.stderr
    assert [b["id"] for b in vssd.json("backup", "list", "--in", repo)["backups"]] == \
        [full["id"]]
    assert os.listdir(os.path.join(repo, "tmp")) == [] and vssd.shadows() == []
    assert vssd.json("status")["backup"] is None


def test_writer_refreshes_its_metadata_at_identify(vssd, mnt, workdir):
    """A writer may give its metadata again in its reply to identify: the
    backup then follows the document as it is now (a file set added since
    it registered), and without --for its files' directories are sources."""
    repo, rf = os.path.join(workdir, "repo"), os.path.join(workdir, "refresh")
    write(os.path.join(mnt, "a", "f"), b"in the first file set")
    write(os.path.join(mnt, "b", "g"), b"in the set added later")
    log = start(vssd, "r", "--set", "%s/a:*:%#x:r" % (mnt, ALL_REQ), "--refresh-from", rf)
    os.sync()
    b = create(vssd, repo)
    assert b["sources"] == [os.path.join(mnt, "a")], b
    with open(rf, "w") as f:
        f.write("%s/b:*:%#x:r\n" % (mnt, ALL_REQ))
    b = create(vssd, repo)
    assert b["sources"] == [os.path.join(mnt, "a"), os.path.join(mnt, "b")], b
    with open(os.path.join(repo, "backups", b["id"], "manifest.jsonl")) as f:
        m = {e["p"]: e for e in map(json.loads, f)}
    assert m["g"]["c"] == 1 and m["g"]["in"] == b["id"], m
    with open(os.path.join(repo, "backups", b["id"], "writers", "1.json")) as f:
        assert "%s/b" % mnt in f.read()
    assert [e[2:] for e in events(log) if e[1] == "identify"] == [[], ["refreshed"]]
    assert "refreshed its metadata at identify" in vssd.log()


def test_exec_without_for_takes_the_components_volumes(vssd, mnt, workdir):
    """vss exec with no --for, as a requester should: the set holds the
    volumes of the selected components' files (their directories are the
    targets, one a filesystem), not every mounted volume; with no
    component (--no-writers) every mounted volume."""
    other = os.path.join(vssd.root, "other")
    vssd.create_volume("other", "64M")
    vssd.vss("volume", "mount", "other", other, "--mkfs", "ext4")
    write(os.path.join(mnt, "a", "f"), b"a")
    write(os.path.join(mnt, "b", "g"), b"b")
    start(vssd, "w", "--set", "%s/a:*:%#x:r" % (mnt, ALL_REQ),
          "--set", "%s/b:*:%#x:r" % (mnt, ALL_REQ))
    out = os.path.join(workdir, "env")
    show = "env | grep ^VSS_ | sort > %s; cat \"$VSS_SHADOW_TARGET_1/f\"" % out

    def seen():
        with open(out) as f:
            return dict(line.rstrip("\n").split("=", 1) for line in f)

    r = vssd.vss("exec", "--", "sh", "-c", show)
    env = seen()
    assert r.stdout == "a" and env["VSS_ORIGIN_PATH_1"] == os.path.join(mnt, "a"), env
    assert "VSS_ORIGIN_PATH_2" not in env, env
    vssd.vss("exec", "--no-writers", "--", "sh", "-c", "env | grep ^VSS_ | sort > " + out)
    assert {seen()["VSS_ORIGIN_PATH_%d" % i] for i in (1, 2)} == {mnt, other}
    assert vssd.shadows() == []


def test_exclusive_writer_never_gets_a_mix(vssd, mnt, workdir):
    repo = os.path.join(workdir, "repo")
    write(os.path.join(mnt, "x", "f"), b"x")
    write(os.path.join(mnt, "y", "f"), b"y")
    lx = start(vssd, "ex", "--schema", hex(BS_INCREMENTAL | BS_DIFFERENTIAL | BS_EXCLUSIVE |
                                           BS_TIMESTAMPED),
               "--set", "%s/x:*:%#x:r" % (mnt, FULL_REQ | ALL_SNAP))
    ly = start(vssd, "fullonly", "--schema", "0x100",
               "--set", "%s/y:*:%#x:r" % (mnt, FULL_REQ | ALL_SNAP))
    types = []
    for t in ("full", "incremental", "differential", "full", "differential",
              "incremental", "incremental"):
        b = create(vssd, repo, "--for", mnt, "--type", t)
        types.append({c["writer_class_id"]: c["type"] for c in b["components"]})
    meta = {w["name"]: w["id"] for w in vssd.json("list", "writers")["writers"]}
    ex = [t[meta["ex"]] for t in types]
    # After incrementals a differential is a full for it, and after a
    # differential an incremental; the chain starts again from there.
    assert ex == ["full", "incremental", "full", "full", "differential", "full",
                  "incremental"], ex
    # Its schema has no incremental nor differential: always a full.
    assert {t[meta["fullonly"]] for t in types} == {"full"}
    # A component backed up in full gets no previous stamp.
    assert [p["previous"] for p in prepares(lx)] == ["-", "ex-1", "-", "-", "ex-4", "-",
                                                     "ex-6"]
    assert all(p["previous"] == "-" for p in prepares(ly))


def test_components_volumes_selection_and_refusals(vssd, mnt, workdir):
    repo = os.path.join(workdir, "repo")
    other = os.path.join(vssd.root, "other")
    vssd.create_volume("other", "96M")
    vssd.vss("volume", "mount", "other", other, "--mkfs", "ext4")
    write(os.path.join(mnt, "a", "db", "one.db"), b"one")
    write(os.path.join(mnt, "a", "db", "skip.txt"), b"not in the set")
    write(os.path.join(mnt, "b", "f"), b"b")
    write(os.path.join(other, "c", "f"), b"c")
    start(vssd, "wa", "--set", "%s/a/db:*.db:%#x" % (mnt, ALL_REQ | ALL_SNAP),
               "--set", "%s/b:*:%#x:r" % (mnt, ALL_REQ | ALL_SNAP))
    lc = start(vssd, "wc", "--set", "%s/c:*:%#x:r" % (other, ALL_REQ | ALL_SNAP))
    # No target: the volumes holding the selected components' files, and
    # only those files.
    b = create(vssd, repo, "--component", "wa")
    assert b["sources"] == [os.path.join(mnt, "a/db"), os.path.join(mnt, "b")], b
    assert [c["name"] for c in b["components"]] == ["data"]
    assert b["files_stored"] == 2, b
    got = restored(vssd, repo, b["id"], os.path.join(workdir, "r"), "/")
    assert sorted(got) == sorted(os.path.relpath(p, "/") for p in (
        os.path.join(mnt, "a/db/one.db"), os.path.join(mnt, "b/f"))), got
    # wc was not selected, yet took part and could ask about partial files.
    pc = prepares(lc)
    assert pc and pc[-1]["partial"] == "1" and "previous" not in pc[-1], pc
    # All components: both volumes in one set.
    b = create(vssd, repo)
    assert sorted(b["sources"]) == sorted([os.path.join(mnt, "a/db"), os.path.join(mnt, "b"),
                                           os.path.join(other, "c")]), b
    # A target that holds only some of the components' files: the others
    # are not backed up (and say so: no type, not succeeded); asked for by
    # name, that fails the backup.
    b = create(vssd, repo, "--for", mnt)
    meta = {w["name"]: w["id"] for w in vssd.json("list", "writers")["writers"]}
    assert {c["writer_class_id"]: c["type"] for c in b["components"]} == {
        meta["wa"]: "full", meta["wc"]: None}, b
    with open(os.path.join(repo, "backups", b["id"], "components.json")) as f:
        done = {w["writer_class_id"]: w["components"][0]["backup_succeeded"]
                for w in json.load(f)["writers"]}
    assert done == {meta["wa"]: True, meta["wc"]: False}, done
    r = vssd.vss("backup", "create", "--to", repo, "--for", mnt, "--component", "wc",
                 check=False)
    assert r.returncode == 1 and "outside the targets" in r.stderr, r.stderr
    # What is not there is named.
    r = vssd.vss("backup", "create", "--to", repo, "--component", "wa:nope", check=False)
    assert r.returncode == 1 and "nope" in r.stderr, r.stderr
    r = vssd.vss("backup", "create", "--to", repo, "--component", "nobody", check=False)
    assert r.returncode == 1 and "nobody" in r.stderr, r.stderr
    n = len(vssd.json("backup", "list", "--in", repo)["backups"])
    # A partial file outside the backup's sources: refused, naming both.
    pf = os.path.join(workdir, "pf")
    with open(pf, "w") as f:
        f.write("%s f 0 1\n" % os.path.join(other, "c"))
    lz = start(vssd, "wz", "--set", "%s/b:*:%#x:r" % (mnt, ALL_REQ | ALL_SNAP),
               "--partial-from", pf, "--shutdown")
    r = vssd.vss("backup", "create", "--to", repo, "--component", "wz", check=False)
    assert r.returncode == 1, r.stdout
    assert "writer wz" in r.stderr and os.path.join(other, "c", "f") in r.stderr, r.stderr
    assert len(vssd.json("backup", "list", "--in", repo)["backups"]) == n
    # The writers got abort, then backup_shutdown: the requester was done.
    assert [e[1] for e in events(lz)][-2:] == ["abort", "backup_shutdown"], events(lz)
    assert vssd.shadows() == []


def test_exec_components_file_keeps_stamps(vssd, mnt, workdir):
    bcd = os.path.join(workdir, "components.json")
    write(os.path.join(mnt, "d", "f"), b"d")
    log = start(vssd, "w", "--set", "%s/d:*:%#x:r" % (mnt, ALL_REQ | ALL_SNAP))
    for t in ("full", "incremental", "copy", "incremental", "differential", "differential"):
        vssd.vss("exec", "--for", mnt, "--type", t, "--components", bcd, "--", "true")
    # A copy is no part of the chain; a differential after incrementals
    # gets none (it is a full to the writer), the next one its stamp.
    assert [p["previous"] for p in prepares(log)] == ["-", "w-1", "-", "w-2", "-", "w-5"], \
        prepares(log)
    with open(bcd) as f:
        doc = json.load(f)
    c = doc["writers"][0]["components"][0]
    assert doc["backup_type"] == "differential" and c["backup_stamp"] == "w-6"
    assert c["backup_succeeded"] is True
    # A run that fails saves nothing.
    r = vssd.vss("exec", "--for", mnt, "--type", "full", "--components", bcd, "--", "false",
                 check=False)
    assert r.returncode == 1
    with open(bcd) as f:
        assert json.load(f)["writers"][0]["components"][0]["backup_stamp"] == "w-6"


def test_sqlite_backups_while_committing(vssd, mnt, workdir):
    import sqlite3
    repo = os.path.join(workdir, "repo")
    dbdir = os.path.join(mnt, "db")
    os.mkdir(dbdir)
    db = os.path.join(dbdir, "app.db")
    c = start_committing(vssd, db, "wal")
    ids = []
    for t in ("full", "incremental", "incremental", "differential"):
        time.sleep(0.3)
        b = create(vssd, repo, "--type", t)
        # The database's directory is the source; the writer has full
        # backups only, so its component is whole every time.
        assert b["sources"] == [dbdir] and [x["type"] for x in b["components"]] == ["full"]
        ids.append(b["id"])
    assert c.poll() is None
    c.kill()
    c.wait()
    counts = []
    for n, bid in enumerate(ids):
        to = os.path.join(workdir, "r%d" % n)
        vssd.vss("restore", "--from", repo, bid, "--to", to)
        con = sqlite3.connect(to + db)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        nt, mt = con.execute("SELECT count(*), max(n) FROM t").fetchone()
        nu, mu = con.execute("SELECT count(*), max(n) FROM u").fetchone()
        con.close()
        assert nt == mt and nu == mu, "rows missing"       # a gap-free prefix
        assert mt == mu, "a transaction is half there"
        counts.append(mt)
    assert counts == sorted(counts) and counts[-1] > counts[0] > 0, counts


def test_backup_shutdown_when_the_requester_goes(vssd, mnt):
    log = start(vssd, "w", "--set", "%s/d:*:%#x:r" % (mnt, ALL_REQ | ALL_SNAP), "--shutdown")
    # A requester that goes away after gathering: its writers hear that it
    # is done, after the abort.
    c = Client(vssd)
    assert c.call("backup.begin")["ok"]
    c.close()
    deadline = time.time() + 10
    while "backup_shutdown" not in [e[1] for e in events(log)]:
        assert time.time() < deadline, events(log)
        time.sleep(0.05)
    assert [e[1] for e in events(log)] == ["identify", "abort", "backup_shutdown"]
    # vss create shadow has no requester's backup: none.
    open(log, "w").close()
    vssd.shadow(mnt)
    assert "backup_shutdown" not in [e[1] for e in events(log)]
