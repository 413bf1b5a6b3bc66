"""Writers and requesters: the event sequence and its order, a
writer failing, hanging or crashing at each step, a requester crashing
mid-set, two requesters at once, refused metadata, and vss exec.  Writers
are tests/system/test_writer.c (vss-test-writer) on the writer library.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from conftest import frame, recv_frame, BUILD, VSS

TEST_WRITER = os.path.abspath(os.path.join(BUILD, "tests", "system", "vss-test-writer"))


# ---- a raw protocol client, to be a requester that can crash ----
class Client:
    def __init__(self, d, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(os.path.join(d.run, "vssd.sock"))
        self.n = 0

    def call(self, op, **args):
        self.n += 1
        self.s.sendall(frame({"version": 1, "id": self.n, "op": op, "args": args}))
        return recv_frame(self.s)

    def close(self):
        self.s.close()


def start_writer(d, name, log, *extra):
    p = d.spawn([TEST_WRITER, "--run-dir", d.run, "--name", name, "--log", log] +
                list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.strip() == "ready", "writer %s did not start: %s" % (name, p.stderr.read())
    return p


def events(log):
    try:
        with open(log) as f:
            return [l.split() for l in f.read().splitlines()]
    except FileNotFoundError:
        return []


def writers(d):
    return {w["name"]: w for w in d.json("list", "writers")["writers"]}


@pytest.fixture
def fsvol(vssd):
    mnt = os.path.join(vssd.root, "mnt")
    vssd.create_volume("fs", "96M")
    vssd.vss("volume", "mount", "fs", mnt, "--mkfs", "ext4")
    return mnt


def test_sequence_and_freeze_order(vssd, fsvol):
    log = os.path.join(vssd.root, "events")
    # Registered in the opposite of the freeze order.
    start_writer(vssd, "sys", log, "--class", "system")
    start_writer(vssd, "db", log, "--class", "back")
    start_writer(vssd, "app", log, "--class", "front")
    ws = writers(vssd)
    assert set(ws) == {"sys", "db", "app"}
    assert all(w["state"] == 1 and w["state_name"] == "stable" for w in ws.values())
    assert all(set(w) >= {"name", "id", "instance", "state", "state_name", "last_error"}
               for w in ws.values())
    assert vssd.json("status")["writers"] == 3
    table = vssd.vss("list", "writers").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "ID", "INSTANCE"]
    assert len(table) == 4 and all("1 stable" in l for l in table[1:])

    r = vssd.vss("exec", "--for", fsvol, "--", "true")
    assert r.returncode == 0, r.stderr
    ev = events(log)
    by = {}
    for name, what, *rest in ev:
        by.setdefault(name, []).append(what)
    seq = ["identify", "prepare_backup", "prepare_snapshot", "freeze", "thaw",
           "post_snapshot", "backup_complete"]
    for name in ("sys", "db", "app"):
        assert by[name] == seq, (name, by[name])
    freezes = [e[0] for e in ev if e[1] == "freeze"]
    thaws = [e[0] for e in ev if e[1] == "thaw"]
    assert freezes == ["app", "db", "sys"]
    assert thaws == ["sys", "db", "app"]
    # BackupComplete says the components succeeded.
    assert all("succeeded=1" in e for e in ev if e[1] == "backup_complete")
    assert all(w["state"] == 1 for w in writers(vssd).values())
    assert vssd.shadows() == []   # exec deletes non-persistent shadows

    # vss create shadow: the snapshot events only.
    open(log, "w").close()
    vssd.shadow(fsvol)
    assert [e[1] for e in events(log) if e[0] == "db"] == [
        "prepare_snapshot", "freeze", "thaw", "post_snapshot"]
    # --no-writers: none.
    open(log, "w").close()
    vssd.vss("create", "shadow", "--for", fsvol, "--no-writers")
    assert events(log) == []


@pytest.mark.parametrize("step", ["prepare_snapshot", "freeze", "thaw", "post_snapshot"])
def test_writer_failing_at_a_step(vssd, fsvol, step):
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "good", log, "--class", "front")
    start_writer(vssd, "bad", log, "--class", "back", "--fail-at", step)
    r = vssd.vss("create", "shadow", "--for", fsvol, check=False)
    ws = writers(vssd)
    state = {"prepare_snapshot": 8, "freeze": 9, "thaw": 10, "post_snapshot": 11}[step]
    assert ws["bad"]["state"] == state
    assert ws["bad"]["state_name"] == "failed_at_" + step
    assert "told to fail at " + step in ws["bad"]["last_error"]
    if step == "post_snapshot":
        assert r.returncode == 0, r.stderr        # the set stays
        assert len(vssd.shadows()) == 1
    else:
        assert r.returncode == 1
        assert "writer bad failed at %s" % step in r.stderr
        assert "aborted" in r.stderr
        assert vssd.shadows() == []
        assert ["good", "abort"] in events(log)
        assert ws["good"]["state"] == 1
    # The filesystem is not frozen: a write and sync go through at once.
    with open(os.path.join(fsvol, "after"), "w") as f:
        f.write("x")
    subprocess.run(["sync", "-f", fsvol], timeout=10, check=True)
    # A failed writer is stable again for the next backup.
    vssd.vss("create", "shadow", "--for", fsvol, "--no-writers")
    assert writers(vssd)["bad"]["state"] == 1


def test_writer_hanging_at_freeze_aborts_within_the_bound(vssd, fsvol):
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "other", log, "--class", "front")
    start_writer(vssd, "hang", log, "--hang-at", "freeze", "--timeout", "1500")
    t0 = time.time()
    r = vssd.vss("create", "shadow", "--for", fsvol, check=False)
    took = time.time() - t0
    assert r.returncode == 1
    assert took < 4, took   # the window, and no second wait for the abort
    assert "failed at freeze" in r.stderr and "1500 ms" in r.stderr
    w = writers(vssd)["hang"]
    assert w["state_name"] == "failed_at_freeze" and w["error_kind"] == "timeout"
    assert ["other", "abort"] in events(log)
    assert vssd.shadows() == []
    with open(os.path.join(fsvol, "after"), "w") as f:
        f.write("x")
    subprocess.run(["sync", "-f", fsvol], timeout=10, check=True)


def test_writer_crashing(vssd, fsvol):
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "ok", log)
    p = start_writer(vssd, "crash", log, "--crash-at", "freeze")
    r = vssd.vss("create", "shadow", "--for", fsvol, check=False)
    assert r.returncode == 1
    assert "writer crash failed at freeze: the writer disconnected" in r.stderr
    assert p.wait(5) != 0
    assert vssd.shadows() == []
    # Gone from the list once the next backup starts; the other one works.
    vssd.shadow(fsvol)
    assert set(writers(vssd)) == {"ok"}


def test_requester_crash_mid_set(vssd, fsvol):
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "w", log)
    c = Client(vssd)
    assert c.call("backup.begin", type="full")["ok"]
    assert c.call("backup.prepare")["ok"]
    r = c.call("shadow.create", targets=[fsvol])
    assert r["ok"], r
    assert len(vssd.shadows()) == 1
    assert vssd.shadows()[0]["state"] == "in-progress"
    assert writers(vssd)["w"]["state_name"] == "waiting_for_backup_complete"
    c.close()   # the requester "crashes"
    deadline = time.time() + 5
    while time.time() < deadline and vssd.shadows():
        time.sleep(0.05)
    assert vssd.shadows() == []
    assert events(log)[-1] == ["w", "abort"]
    assert writers(vssd)["w"]["state"] == 1
    assert "requester went away" in vssd.log()


def test_two_requesters(vssd, fsvol):
    a, b = Client(vssd), Client(vssd)
    assert a.call("backup.begin")["ok"]
    t0 = time.time()
    r = b.call("backup.begin", wait_ms=500)
    assert not r["ok"] and r["error"]["code"] == "EBUSY"
    assert 0.4 < time.time() - t0 < 5
    # B waits, and gets the slot when A completes.
    b.s.sendall(frame({"version": 1, "id": 99, "op": "backup.begin",
                       "args": {"wait_ms": 10000}}))
    time.sleep(0.3)
    r = a.call("shadow.create", targets=[fsvol])
    assert r["ok"], r
    assert a.call("backup.complete")["ok"]
    r = recv_frame(b.s)
    assert r["ok"], r
    assert b.call("shadow.create", targets=[fsvol])["ok"]
    assert b.call("backup.complete")["ok"]
    a.close()
    b.close()
    assert len(vssd.shadows()) == 2 and all(s["state"] == "valid" for s in vssd.shadows())


def test_backup_components_through_writers(vssd, fsvol):
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "w", log, "--stamp", "lsn:42", "--partial")
    c = Client(vssd)
    r = c.call("backup.begin", type="incremental", partial_file_support=True)
    assert r["ok"], r
    meta = r["result"]["writers"][0]["metadata"]
    assert meta["writer_name"] == "w"
    comp = {"format": "vss-backup-components", "version": 1, "backup_type": "incremental",
            "partial_file_support": True,
            "writers": [{"writer_class_id": meta["writer_class_id"],
                         "writer_instance_id": meta["writer_instance_id"],
                         "components": [{"name": "data",
                                         "previous_backup_stamp": "lsn:7"}]}]}
    r = c.call("backup.prepare", components=json.dumps(comp))
    assert r["ok"], r
    doc = json.loads(r["result"]["components"])
    got = doc["writers"][0]["components"][0]
    assert got["backup_stamp"] == "lsn:42"
    assert got["previous_backup_stamp"] == "lsn:7"
    assert got["partial_files"][0]["filename"] == "big.db"
    assert got["differenced_files"][0]["file_spec"] == "*.log"
    assert ["w", "prepare_backup", "previous=lsn:7"] in events(log)
    # backup_complete goes out only for a set taken.
    r = c.call("backup.complete", succeeded=False)
    assert not r["ok"] and r["error"]["code"] == "EINVAL", r
    assert "no set was taken" in r["error"]["message"]
    assert ["w", "backup_complete", "succeeded=0"] not in events(log)
    assert c.call("shadow.create", targets=[fsvol])["ok"]
    assert c.call("backup.complete", succeeded=False)["ok"]
    assert ["w", "backup_complete", "succeeded=0"] in events(log)
    # A document naming a component the writer does not have is refused.
    assert c.call("backup.begin")["ok"]
    comp["backup_type"] = "full"
    comp["writers"][0]["components"][0]["name"] = "nope"
    r = c.call("backup.prepare", components=json.dumps(comp))
    assert not r["ok"] and "nope" in r["error"]["message"]
    assert c.call("backup.abort")["ok"]
    c.close()


WMD = {
    "format": "vss-writer-metadata", "version": 1, "writer_name": "raw",
    "writer_class_id": "6f1c2a9e-3b7d-4e5f-9a8b-0c1d2e3f4a5b",
    "writer_instance_id": "b2c3d4e5-f607-4819-a2b3-c4d5e6f70819",
    "usage_type": "user_data", "source_type": "other", "components": [],
}


def test_metadata_refused(vssd):
    def register(doc):
        c = Client(vssd)
        r = c.call("writer.register", metadata=doc)
        c.close()
        return r
    r = register("{not json")
    assert not r["ok"] and r["error"]["code"] == "EBADMSG"
    assert "writer metadata refused" in r["error"]["message"]
    big = dict(WMD, instance_name="x" * 1000,
               exclude_files=[{"path": "/a", "file_spec": "f%d" % i} for i in range(12000)])
    r = register(json.dumps(big))
    assert not r["ok"] and r["error"]["code"] == "EFBIG", r
    contradictory = dict(WMD, restore_method={"method": "restore_to_alternate_location"})
    r = register(json.dumps(contradictory))
    assert not r["ok"] and r["error"]["code"] == "EINVAL"
    assert "alternate" in r["error"]["message"]
    r = register(json.dumps(dict(WMD, bogus=1)))
    assert not r["ok"] and 'unknown member "bogus"' in r["error"]["message"]
    # Two instances with one ID: the second is refused while the first lives.
    c = Client(vssd)
    assert c.call("writer.register", metadata=json.dumps(WMD))["ok"]
    r = register(json.dumps(WMD))
    assert not r["ok"] and r["error"]["code"] == "EEXIST"
    assert writers(vssd)["raw"]["state"] == 1
    c.close()
    time.sleep(0.2)
    assert writers(vssd) == {}


# ---- vss exec ----
def test_exec_rsync_from_the_shadow(vssd, fsvol):
    from test_fs import busy_tree, manifest
    from conftest import mounts_under
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "w", log)
    data = os.path.join(fsvol, "data")
    os.mkdir(data)
    # The manifest of the instant: the writer is stopped until the set is
    # taken, and changes the source again while rsync reads the shadow.
    w, m = busy_tree(vssd, data, 7)
    target = os.path.join(vssd.root, "backup")
    script = os.path.join(vssd.root, "vars.sh")
    cmd = ('kill -CONT %d; sleep 0.3; rsync -a "$VSS_SHADOW_TARGET_1/" %s/ && '
           'test "$VSS_ORIGIN_PATH_1" = %s && test -b "$VSS_SHADOW_DEVICE_1" -o '
           '-f "$VSS_SHADOW_DEVICE_1" && test -n "$VSS_SHADOW_ID_1" && '
           'test "$VSS_SHADOW_TARGET_1" = "$VSS_SHADOW_PATH_1/data"'
           % (w.pid, target, data))
    r = vssd.vss("exec", "--for", data, "--script", script, "--", "sh", "-c", cmd,
                 check=False)
    assert r.returncode == 0, r.stderr + vssd.log()[-2000:]
    time.sleep(0.3)
    assert w.poll() is None
    w.kill()
    w.wait()
    got = manifest(target)
    assert len(got) > 5
    assert got == m
    assert manifest(data) != m   # the source did change meanwhile
    assert vssd.shadows() == []
    assert mounts_under(os.path.join(vssd.run, "exec")) == []
    # The script is sourceable and names the set.
    out = subprocess.run(["sh", "-c", '. "%s"; echo "$VSS_SHADOW_SET_ID $VSS_ORIGIN_PATH_1"'
                          % script], capture_output=True, text=True, check=True).stdout
    set_id, origin = out.split()
    assert len(set_id) == 36 and origin == data
    assert events(log)[-1] == ["w", "backup_complete", "succeeded=1"]


def test_exec_status_persistent_and_live(vssd, fsvol):
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "w", log)
    r = vssd.vss("exec", "--for", fsvol, "--", "sh", "-c", "exit 7", check=False)
    assert r.returncode == 7
    assert events(log)[-1] == ["w", "abort"]
    assert vssd.shadows() == []
    r = vssd.vss("exec", "--for", fsvol, "--persistent", "--type", "copy", "--",
                 "true", check=False)
    assert r.returncode == 0, r.stderr
    s = vssd.shadows()
    assert len(s) == 1 and "persistent" in s[0]["attributes"] and s[0]["state"] == "valid"
    # --no-writers: no events; --exclude-writer: none for that writer.
    open(log, "w").close()
    vssd.vss("exec", "--for", fsvol, "--no-writers", "--", "true")
    vssd.vss("exec", "--for", fsvol, "--exclude-writer", "w", "--", "true")
    assert events(log) == []
    # A path no provider can shadow: refused, or read live with --allow-live.
    live = os.path.join(vssd.root, "live")
    os.mkdir(live)
    r = vssd.vss("exec", "--for", live, "--", "true", check=False)
    assert r.returncode == 1 and "--allow-live" in r.stderr
    r = vssd.vss("exec", "--for", live, "--for", fsvol, "--allow-live", "--", "sh", "-c",
                 'test "$VSS_SHADOW_LIVE_1" = 1 && test "$VSS_SHADOW_TARGET_1" = %s && '
                 'test -z "$VSS_SHADOW_LIVE_2" && test -d "$VSS_SHADOW_PATH_2/lost+found"'
                 % live, check=False)
    assert r.returncode == 0, r.stderr
    r = vssd.vss("exec", "--for", fsvol, check=False)
    assert r.returncode == 2


# ---- vss-writer-hooks ----
HOOKS = os.path.abspath(os.path.join(BUILD, "src", "vss-writer-hooks", "vss-writer-hooks"))


def hooks_dir(root, hooks):
    d = os.path.join(root, "hooks.d")
    os.makedirs(d, exist_ok=True)
    for name, body in hooks.items():
        p = os.path.join(d, name)
        with open(p, "w") as f:
            f.write("#!/bin/sh\n" + body + "\n")
        os.chmod(p, 0o755)
    return d


def start_hooks(d, hdir, timeout="5", *extra):
    p = d.spawn([HOOKS, "--run-dir", d.run, "--hooks-dir", hdir, "--timeout", timeout]
                + list(extra), stderr=open(os.path.join(d.root, "hooks.log"), "ab"))
    deadline = time.time() + 10
    while "hooks" not in writers(d):
        assert time.time() < deadline and p.poll() is None, "vss-writer-hooks did not start"
        time.sleep(0.05)
    return p


def test_hooks_run_in_name_order(vssd, fsvol):
    out = os.path.join(vssd.root, "hooks.out")
    hdir = hooks_dir(vssd.root, {
        "20-b": 'echo "b $1" >> %s' % out,
        "10-a": 'echo "a $1" >> %s' % out,
        ".hidden": 'echo "hidden $1" >> %s' % out,
    })
    with open(os.path.join(hdir, "30-not-executable"), "w") as f:
        f.write("#!/bin/sh\necho nope >> %s\n" % out)
    start_hooks(vssd, hdir)
    vssd.shadow(fsvol)
    with open(out) as f:
        assert f.read().split("\n")[:-1] == ["a freeze", "b freeze", "a thaw", "b thaw"]


def test_hooks_files_read_again_at_identify(vssd, fsvol, workdir):
    """--files FILE: the hooks component's file sets, read again at every
    identify: a change between two backups is in the second one's writer
    metadata and files; a FILE that does not parse fails the writer at
    identify, naming the line."""
    repo, files = os.path.join(workdir, "repo"), os.path.join(workdir, "files")
    for d in ("a", "b"):
        os.makedirs(os.path.join(fsvol, d))
        with open(os.path.join(fsvol, d, "f"), "w") as f:
            f.write("in " + d)
    with open(files, "w") as f:
        f.write("# the application's data\n%s/a\n" % fsvol)
    start_hooks(vssd, hooks_dir(vssd.root, {}), "5", "--files", files)

    def backed_up():
        b = vssd.json("backup", "create", "--to", repo, "--for", fsvol)
        with open(os.path.join(repo, "backups", b["id"], "writers", "1.json")) as f:
            wmd = json.load(f)
        with open(os.path.join(repo, "backups", b["id"], "manifest.jsonl")) as f:
            comp = {e["p"] for e in map(json.loads, f) if e.get("c")}
        sets = [(fs["path"], fs["file_spec"], fs["recursive"])
                for c in wmd["components"] for fs in c["file_sets"]]
        return sets, comp

    assert backed_up() == ([(fsvol + "/a", "*", False)], {"a/f"})
    with open(files, "w") as f:
        f.write("%s/b * recursive\n" % fsvol)
    assert backed_up() == ([(fsvol + "/b", "*", True)], {"b/f"})
    with open(files, "w") as f:
        f.write("relative/path\n")
    vssd.vss("backup", "create", "--to", repo, "--for", fsvol, check=False)
    w = writers(vssd)["hooks"]
    assert w["state_name"] == "failed_at_identify", w
    assert files + ":1:" in w["last_error"] and "absolute" in w["last_error"], w


@pytest.mark.parametrize("how", ["fail", "hang"])
def test_hook_failing_or_hanging_aborts_the_set(vssd, fsvol, how):
    out = os.path.join(vssd.root, "hooks.out")
    hdir = hooks_dir(vssd.root, {
        "10-a": 'echo "a $1" >> %s' % out,
        "20-b": ('[ "$1" = freeze ] && exit 3; exit 0' if how == "fail"
                 else '[ "$1" = freeze ] && sleep 30; exit 0'),
    })
    start_hooks(vssd, hdir, timeout="1")
    t0 = time.time()
    r = vssd.vss("create", "shadow", "--for", fsvol, check=False)
    assert r.returncode == 1
    assert time.time() - t0 < 8
    assert "writer hooks failed at freeze" in r.stderr
    assert ("exit status 3" if how == "fail" else "timed out") in r.stderr
    assert vssd.shadows() == []
    w = writers(vssd)["hooks"]
    assert w["state_name"] == "failed_at_freeze"
    assert w["error_kind"] == ("nonretryable" if how == "fail" else "timeout")
    with open(out) as f:
        assert f.read().split("\n")[:-1] == ["a freeze", "a thaw"]
    with open(os.path.join(fsvol, "after"), "w") as f:
        f.write("x")
    subprocess.run(["sync", "-f", fsvol], timeout=10, check=True)


# ---- vss-writer-sqlite ----
SQLITE_WRITER = os.path.abspath(os.path.join(BUILD, "src", "vss-writer-sqlite",
                                             "vss-writer-sqlite"))

COMMITTER = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
db.execute("PRAGMA journal_mode=%s" % sys.argv[2])
db.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, pad BLOB)")
db.execute("CREATE TABLE IF NOT EXISTS u (n INTEGER PRIMARY KEY)")
n = 0
print("ready", flush=True)
while True:
    n += 1
    db.execute("BEGIN")
    db.execute("INSERT INTO t VALUES (?, randomblob(3000))", (n,))
    db.execute("INSERT INTO u VALUES (?)", (n,))
    db.execute("COMMIT")
    if sys.argv[2] != "wal":
        time.sleep(0.001)   # rollback-mode locks are not fair: let others in
"""


def start_committing(d, db, mode):
    """A program committing to @db in a loop, and the SQLite writer for it,
    registered; returns the program's process."""
    return start_committer(d, db, [COMMITTER, db, mode])


def start_committer(d, db, args):
    """The program `python3 -c ARGS...`, once it said ready, and the SQLite
    writer for @db, registered; returns the program's process."""
    c = d.spawn([sys.executable, "-c"] + args, stdout=subprocess.PIPE, text=True)
    assert c.stdout.readline().strip() == "ready"
    start_sqlite_writer(d, db)
    return c


def start_sqlite_writer(d, db):
    """The SQLite writer for @db, once registered."""
    w = d.spawn([SQLITE_WRITER, "--run-dir", d.run, db],
                stderr=open(os.path.join(d.root, "sqlite.log"), "ab"))
    deadline = time.time() + 10
    while "sqlite" not in writers(d):
        assert time.time() < deadline and w.poll() is None
        time.sleep(0.05)


def copy_from_shadows(d, ids, names=None):
    """The files @names (default: all) of db/ in each shadow of @ids, copied
    to a directory of their own; returns the directories."""
    import shutil
    copies = []
    for i, sid in enumerate(ids):
        exp = os.path.join(d.root, "exp%d" % i)
        d.vss("expose", sid, exp)
        try:
            copy = os.path.join(d.root, "copy%d" % i)
            os.mkdir(copy)
            for name in names or os.listdir(os.path.join(exp, "db")):
                shutil.copy(os.path.join(exp, "db", name), copy)
        finally:
            d.vss("unexpose", exp)
        copies.append(copy)
    return copies


def test_sqlite_writer_follows_a_moved_database_at_identify(vssd, fsvol, workdir):
    """The DATABASE given is a symlink: pointed at another database between
    two backups, the second backup's writer metadata names where it points
    now; a database gone fails the writer at identify, naming it."""
    import sqlite3
    repo = os.path.join(workdir, "repo")
    for d in ("one", "two"):
        os.makedirs(os.path.join(fsvol, d))
        con = sqlite3.connect(os.path.join(fsvol, d, "app.db"))
        con.execute("create table t (x)")
        con.commit()
        con.close()
    link = os.path.join(workdir, "app.db")
    os.symlink(os.path.join(fsvol, "one", "app.db"), link)
    start_sqlite_writer(vssd, link)

    def file_sets():
        b = vssd.json("backup", "create", "--to", repo, "--for", fsvol)
        with open(os.path.join(repo, "backups", b["id"], "writers", "1.json")) as f:
            return {fs["path"] for c in json.load(f)["components"] for fs in c["file_sets"]}

    assert file_sets() == {os.path.join(fsvol, "one")}
    os.unlink(link)
    os.symlink(os.path.join(fsvol, "two", "app.db"), link)
    assert file_sets() == {os.path.join(fsvol, "two")}
    os.unlink(link)
    vssd.vss("backup", "create", "--to", repo, "--for", fsvol, check=False)
    st = writers(vssd)["sqlite"]
    assert st["state_name"] == "failed_at_identify" and link in st["last_error"], st


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_sqlite_shadows_hold_consistent_databases(vssd, fsvol, mode):
    import sqlite3
    dbdir = os.path.join(fsvol, "db")
    os.mkdir(dbdir)
    db = os.path.join(dbdir, "app.db")
    c = start_committing(vssd, db, mode)
    ids = []
    for _ in range(4):
        time.sleep(0.4)
        if mode == "wal":
            # Readers are not blocked (in rollback mode the committer itself
            # starves them, so only WAL says anything about the writer).
            r = sqlite3.connect(db, timeout=0.5)
            r.execute("SELECT count(*) FROM t").fetchone()
            r.close()
        ids.append(vssd.shadow(fsvol)["shadows"][0]["id"])
    assert c.poll() is None
    c.kill()
    c.wait()
    counts = []
    for copy in copy_from_shadows(vssd, ids):
        con = sqlite3.connect(os.path.join(copy, "app.db"))
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        nt, mt = con.execute("SELECT count(*), max(n) FROM t").fetchone()
        nu, mu = con.execute("SELECT count(*), max(n) FROM u").fetchone()
        con.close()
        assert nt == mt and nu == mu, "rows missing"       # a gap-free prefix
        assert mt == mu, "a transaction is half there"     # complete last transaction
        counts.append(mt)
    assert counts == sorted(counts) and counts[-1] > counts[0] > 0
    # The database is described as one database component with its WAL.
    cl = Client(vssd)
    got = cl.call("writers.list", metadata=True)["result"]["writers"][0]["metadata"]
    cl.close()
    comp = got["components"][0]
    assert comp["type"] == "database" and comp["name"] == "app.db"
    assert {fs["kind"] for fs in comp["file_sets"]} == {"database", "log"}
    assert any(fs["file_spec"] == "app.db-wal" for fs in comp["file_sets"])


# The committer of the main-file test: after each commit is acknowledged it
# writes the commit's number to a side file on the same filesystem (8
# bytes, in place).  The filesystem freeze writes the page cache out, so
# the shadow's side file holds a number whose commit, and all before it,
# were acknowledged before the writer's freeze.
ACK_COMMITTER = r"""
import os, sqlite3, struct, sys
db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
db.execute("PRAGMA journal_mode=wal")
db.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, pad BLOB)")
side = os.open(sys.argv[2], os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(side, struct.pack("<Q", 0), 0)
n = 0
print("ready", flush=True)
while True:
    n += 1
    db.execute("INSERT INTO t VALUES (?, randomblob(2000))", (n,))
    os.pwrite(side, struct.pack("<Q", n), 0)
"""


def test_sqlite_main_file_alone_holds_every_acknowledged_commit(vssd, fsvol):
    """A backup that keeps the database file and drops its -wal must still
    hold every commit acknowledged before the freeze: the writer takes the
    write lock, then checkpoints the whole WAL into the main file."""
    import sqlite3
    import struct
    dbdir = os.path.join(fsvol, "db")
    os.mkdir(dbdir)
    db = os.path.join(dbdir, "app.db")
    c = start_committer(vssd, db, [ACK_COMMITTER, db, os.path.join(dbdir, "acked")])
    ids = []
    for _ in range(5):
        time.sleep(0.3)
        ids.append(vssd.shadow(fsvol)["shadows"][0]["id"])
    assert c.poll() is None
    c.kill()
    c.wait()
    for i, copy in enumerate(copy_from_shadows(vssd, ids, ["app.db", "acked"])):
        with open(os.path.join(copy, "acked"), "rb") as f:
            acked = struct.unpack("<Q", f.read(8))[0]
        assert not os.path.exists(os.path.join(copy, "app.db-wal"))
        con = sqlite3.connect(os.path.join(copy, "app.db"))
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n, top = con.execute("SELECT count(*), coalesce(max(n), 0) FROM t").fetchone()
        con.close()
        assert acked > 0
        assert n == top, "a gap in the main file's commits"
        assert top >= acked, ("shadow %d: the main file alone holds %d commits, %d were "
                              "acknowledged before the freeze" % (i, top, acked))


# ---- the requester API's example ----
def test_requester_example(vssd, fsvol):
    from conftest import mounts_under
    demo = os.path.abspath(os.path.join(BUILD, "examples", "requester_demo"))
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "w", log)
    f = os.path.join(fsvol, "sub", "hello.txt")
    os.makedirs(os.path.dirname(f))
    with open(f, "w") as fh:
        fh.write("before\n")
    # Change the file once the set is taken: the example must read "before".
    changer = vssd.spawn(["sh", "-c", 'while ! grep -q post_snapshot "%s" 2>/dev/null; do '
                          'sleep 0.01; done; echo after > "%s"' % (log, f)])
    exp = os.path.join(vssd.root, "exp")
    r = subprocess.run([demo, "--run-dir", vssd.run, fsvol, exp, f], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr + vssd.log()[-2000:]
    changer.wait(10)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("set ")
    assert "writer w 5 waiting_for_backup_complete" in lines
    assert lines[-1] == "file %s %s/sub/hello.txt before" % (f, exp)
    with open(f) as fh:
        assert fh.read() == "after\n"
    assert [e[1] for e in events(log)] == [
        "identify", "prepare_backup", "prepare_snapshot", "freeze", "thaw",
        "post_snapshot", "backup_complete"]
    assert vssd.shadows() == [] and mounts_under(exp) == []


def test_late_answer_then_next_backup(vssd, fsvol):
    """A writer that answers freeze after its deadline fails that set, is
    unresponsive until its late answer arrives, then stable again, and
    takes part in the next one normally."""
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "slow", log, "--slow-at", "freeze", "--timeout", "1000")
    r = vssd.vss("create", "shadow", "--for", fsvol, check=False)
    assert r.returncode == 1 and "window of 1000 ms" in r.stderr
    w = writers(vssd)["slow"]
    assert w["state_name"] == "failed_at_freeze" and w["unresponsive"]
    time.sleep(2)   # the late answer arrives
    w = writers(vssd)["slow"]
    assert w["state_name"] == "stable" and not w["unresponsive"]
    vssd.shadow(fsvol)
    assert writers(vssd)["slow"]["state"] == 1
    assert [e[1] for e in events(log)][-4:] == ["prepare_snapshot", "freeze", "thaw",
                                                "post_snapshot"]


def test_optional_and_required_writer_failing_early(vssd, fsvol):
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "ok", log)
    start_writer(vssd, "bad", log, "--fail-at", "prepare_backup")
    c = Client(vssd)
    assert c.call("backup.begin")["ok"]
    r = c.call("backup.prepare")
    assert r["ok"], r
    doc = json.loads(r["result"]["components"])
    assert len(doc["writers"]) == 1          # bad's components left the backup
    names = {w["name"]: w for w in r["result"]["writers"]}
    assert set(names) == {"ok"}
    assert writers(vssd)["bad"]["state_name"] == "failed_at_prepare_backup"
    assert c.call("shadow.create", targets=[fsvol])["ok"]
    assert c.call("backup.complete")["ok"]
    assert ["bad", "freeze"] not in events(log)
    # Required: the step fails with the writer's reason.
    assert c.call("backup.begin", require_writers=["bad"])["ok"]
    r = c.call("backup.prepare")
    assert not r["ok"] and "writer bad failed at prepare_backup" in r["error"]["message"]
    assert c.call("backup.abort")["ok"]
    r = c.call("backup.begin", require_writers=["nobody"])
    assert not r["ok"] and r["error"]["code"] == "ENOENT"
    c.close()


def test_set_window_bounds_a_hanging_writer(vssd, fsvol):
    """The window is configurable per set too: a writer with the default 60 s
    hangs at freeze; --freeze-timeout 1 aborts the set within about 1 s."""
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "hang", log, "--hang-at", "freeze")
    for cmd in (["create", "shadow", "--for", fsvol, "--freeze-timeout", "1"],
                ["exec", "--for", fsvol, "--freeze-timeout", "1", "--", "true"]):
        if cmd[0] == "exec":
            # "hang" is still stuck in its freeze: unresponsive, it is left
            # out of the backup; a fresh one hangs at freeze again.
            start_writer(vssd, "hang2", log, "--hang-at", "freeze")
        t0 = time.time()
        r = vssd.vss(*cmd, check=False)
        assert r.returncode == 1, r.stderr
        assert time.time() - t0 < 6
        assert "window of 1000 ms" in r.stderr
        assert vssd.shadows() == []
    ws = writers(vssd)
    assert ws["hang"]["state_name"] == "failed_at_freeze" and ws["hang"]["unresponsive"]
    assert ws["hang2"]["state_name"] == "failed_at_freeze"
    r = vssd.vss("create", "shadow", "--for", fsvol, "--freeze-timeout", "0", check=False)
    assert r.returncode == 2


def test_requester_gone_while_writers_are_frozen(vssd, fsvol):
    """The requester disappears while a writer sits in freeze: when the set
    is taken the daemon finds it gone, aborts the writers, deletes the set."""
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "slow", log, "--slow-at", "freeze")
    c = Client(vssd)
    assert c.call("backup.begin")["ok"]
    assert c.call("backup.prepare")["ok"]
    c.s.sendall(frame({"version": 1, "id": 50, "op": "shadow.create",
                       "args": {"targets": [fsvol]}}))
    time.sleep(0.5)
    c.close()
    deadline = time.time() + 10
    while time.time() < deadline and (events(log)[-1:] != [["slow", "abort"]]
                                      or vssd.shadows()):
        time.sleep(0.1)
    assert events(log)[-1] == ["slow", "abort"]
    assert vssd.shadows() == []
    assert writers(vssd)["slow"]["state"] == 1
    vssd.shadow(fsvol)   # and the slot is free again


def test_exec_killed_mid_command(vssd, fsvol):
    """vss exec dies (kill -9) while COMMAND runs: the daemon aborts the
    backup, unmounts the exposed shadow and deletes the set."""
    from conftest import mounts_under
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "w", log)
    marker = os.path.join(vssd.root, "running")
    p = vssd.spawn([VSS, "--run-dir", vssd.run, "exec", "--for", fsvol, "--", "sh", "-c",
                    'touch %s; exec sleep 30' % marker], start_new_session=True)
    deadline = time.time() + 20
    while not os.path.exists(marker):
        assert time.time() < deadline and p.poll() is None
        time.sleep(0.05)
    assert len(vssd.shadows()) == 1
    assert mounts_under(os.path.join(vssd.run, "exec")) != []
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.time() + 10
    while time.time() < deadline and (vssd.shadows() or
                                      mounts_under(os.path.join(vssd.run, "exec"))):
        time.sleep(0.05)
    assert vssd.shadows() == []
    assert mounts_under(os.path.join(vssd.run, "exec")) == []
    assert events(log)[-1] == ["w", "abort"]


def test_exec_on_btrfs_and_a_volume(vssd, fsvol):
    """vss exec with a btrfs subvolume (btrfs provider) and a vss volume in
    one set: each target's variables point into its own exposed shadow."""
    from test_providers import make_btrfs, subvolume
    from conftest import mounts_under
    bt = make_btrfs(vssd.root)
    sub = subvolume(os.path.join(bt, "data"))
    os.makedirs(os.path.join(sub, "in"))
    with open(os.path.join(sub, "in", "f"), "w") as f:
        f.write("btrfs-before\n")
    with open(os.path.join(fsvol, "g"), "w") as f:
        f.write("ext4-before\n")
    cmd = ('cat "$VSS_SHADOW_TARGET_1/f" "$VSS_SHADOW_TARGET_2/g"; '
           'echo x > %s/in/f; echo y > %s/g; '
           'cat "$VSS_SHADOW_TARGET_1/f" "$VSS_SHADOW_TARGET_2/g"' % (sub, fsvol))
    r = vssd.vss("exec", "--for", os.path.join(sub, "in"), "--for", fsvol, "--",
                 "sh", "-c", cmd, check=False)
    assert r.returncode == 0, r.stderr + vssd.log()[-2000:]
    assert r.stdout.split() == ["btrfs-before", "ext4-before"] * 2
    assert vssd.shadows() == []
    assert mounts_under(os.path.join(vssd.run, "exec")) == []


def wait_for(cond, seconds, what):
    deadline = time.time() + seconds
    while not cond():
        assert time.time() < deadline, what
        time.sleep(0.05)


def test_writers_outlive_vssd(vssd, fsvol):
    """vssd is killed (kill -9) while writers hold their freeze: each lets go
    at once (the library runs abort: the hooks get "thaw"), registers again
    once a new vssd is up, and takes part in the next backup.  A writer
    started with --once exits instead."""
    log = os.path.join(vssd.root, "events")
    out = os.path.join(vssd.root, "hooks.out")
    hdir = hooks_dir(vssd.root, {"10-a": 'echo "a $1" >> %s' % out})
    hooks = start_hooks(vssd, hdir)
    once = vssd.spawn([HOOKS, "--run-dir", vssd.run, "--hooks-dir", hdir, "--once"],
                      stderr=subprocess.DEVNULL)
    wait_for(lambda: len(vssd.json("list", "writers")["writers"]) == 2, 10,
             "the --once hooks writer did not start")
    # Back-end: frozen after the hooks (front-end); answers freeze 2.5 s late.
    start_writer(vssd, "db", log, "--reconnect", "--slow-at", "freeze")
    c = vssd.spawn([VSS, "--run-dir", vssd.run, "create", "shadow", "--for", fsvol],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: ["db", "freeze"] in events(log), 20, "db never got freeze")
    with open(out) as f:
        assert f.read().split("\n")[:-1] == ["a freeze", "a freeze"]   # two hooks writers
    vssd.kill9()
    c.wait(10)
    assert c.returncode != 0
    # Nobody waits for a new vssd to let go of a freeze.
    wait_for(lambda: ["db", "abort"] in events(log), 10, "db kept its freeze")
    wait_for(lambda: open(out).read().count("a thaw") == 2, 10, "a hook kept its freeze")
    ev = events(log)
    assert ev[ev.index(["db", "freeze"]):] == [["db", "freeze"], ["db", "abort"],
                                               ["db", "connection", "down"]]
    once.wait(10)
    assert once.returncode == 1
    assert hooks.poll() is None

    vssd.start()
    wait_for(lambda: sorted(w["name"] for w in vssd.json("list", "writers")["writers"])
             == ["db", "hooks"], 20, "the writers did not register again")
    assert events(log)[-1] == ["db", "connection", "up"]
    with open(os.path.join(vssd.root, "hooks.log")) as f:
        hlog = f.read()
    assert "registering when vssd is up" in hlog and "registered again" in hlog
    n = len(events(log))
    vssd.vss("exec", "--for", fsvol, "--", "true")
    assert [e[1] for e in events(log)[n:]] == [
        "identify", "prepare_backup", "prepare_snapshot", "freeze", "thaw",
        "post_snapshot", "backup_complete"]
    with open(out) as f:
        assert f.read().split("\n")[-3:-1] == ["a freeze", "a thaw"]


def test_writers_started_before_vssd(daemon_factory):
    """Writers started at boot before vssd wait for it (unless --once) and
    register once it is up; the SQLite writer too."""
    d = daemon_factory(start=False)
    hdir = hooks_dir(d.root, {"10-a": "true"})
    hlog = os.path.join(d.root, "hooks.log")
    hooks = d.spawn([HOOKS, "--run-dir", d.run, "--hooks-dir", hdir],
                    stderr=open(hlog, "ab"))
    db = os.path.join(d.root, "app.db")
    subprocess.run(["sqlite3", db, "CREATE TABLE t (n)"], check=True)
    sq = d.spawn([SQLITE_WRITER, "--run-dir", d.run, db], stderr=subprocess.DEVNULL)
    once = subprocess.run([HOOKS, "--run-dir", d.run, "--hooks-dir", hdir, "--once"],
                          capture_output=True, text=True, timeout=10)
    assert once.returncode == 1 and "cannot reach vssd" in once.stderr
    wait_for(lambda: "started, vssd not up yet" in open(hlog).read(), 10,
             "the hooks writer did not start")
    time.sleep(0.3)
    assert hooks.poll() is None and sq.poll() is None
    d.start()
    wait_for(lambda: sorted(w["name"] for w in d.json("list", "writers")["writers"])
             == ["hooks", "sqlite"], 20, "the writers did not register")
    with open(hlog) as f:
        text = f.read()
    assert "registering when vssd is up" in text and "vss-writer-hooks: registered\n" in text, text
