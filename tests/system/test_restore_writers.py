"""Restores that writers take part in (vss restore; doc/writers.md,
"Restores"): the SQLite writer lets go of its database for the restore and
opens it again, and the restored database passes integrity_check and holds
a gap-free prefix of the commits made while it was backed up; a writer
failing pre_restore stops the restore before anything is written; a
post_restore failure is reported; each restore method (if not there, if
can replace, stop-restore-start and restore-stop-start through a
systemctl of the test's, an alternate location, at reboot and at reboot if
it cannot replace, custom); components chosen by name; the hooks writer's
pre-restore and post-restore hooks; a full disk during a restore; vss
restore killed by SIGKILL in the middle (the writers get abort, the SQLite
writer opens its database again); two backups into one repository at
once; a restore of plain files without vssd.  What a restore wrote is
compared with a manifest of the tree made here at the backup's time
(tree_manifest, test_backup.py), not with vss's own idea of it.
"""
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from conftest import BUILD, VSS
from test_backup import tree_manifest, diff
import systemd_ns
from test_writers import (COMMITTER, HOOKS, SQLITE_WRITER, events, hooks_dir, start_writer,
                          writers)


@pytest.fixture
def fsvol(vssd):
    mnt = os.path.join(vssd.root, "mnt")
    vssd.create_volume("fs", "400M")
    vssd.vss("volume", "mount", "fs", mnt, "--mkfs", "ext4")
    return mnt


def env_of(vssd, **extra):
    """vss's environment: restores at reboot staged under the test's own
    state directory (never /var/lib/vss), the test's systemctl first."""
    env = dict(os.environ)
    env["VSS_STATE_DIR"] = os.path.join(vssd.root, "restore-state")
    env["PATH"] = os.path.join(vssd.root, "bin") + ":" + env.get("PATH", "")
    env.update(extra)
    return env


def run_vss(vssd, *args, env=None, timeout=120):
    return subprocess.run([VSS, "--run-dir", vssd.run] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout,
                          env=env or env_of(vssd))


def backup(vssd, repo, mnt, *extra):
    r = run_vss(vssd, "backup", "create", "--to", repo, "--for", mnt, "--json", *extra)
    assert r.returncode == 0, r.stderr + vssd.log()[-3000:]
    return json.loads(r.stdout)


def restore(vssd, repo, bid, *extra, ok=True):
    r = run_vss(vssd, "restore", "--from", repo, bid, "--json", *extra)
    assert (r.returncode == 0) == ok, (r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout) if r.stdout else None, r


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def data_writer(vssd, fsvol, name="w", *extra):
    """A test writer whose component "data" is fsvol/data (two files)."""
    data = os.path.join(fsvol, name + "-data")
    write(os.path.join(data, "a"), b"a at backup\n")
    write(os.path.join(data, "sub", "b"), b"b at backup\n" * 100)
    log = os.path.join(vssd.root, name + ".log")
    start_writer(vssd, name, log, "--path", data, *extra)
    return data, log


def fake_systemctl(vssd, watched):
    """A systemctl of the test's, first in vss's PATH: logs each call with
    the first bytes of @watched at that moment."""
    bindir = os.path.join(vssd.root, "bin")
    os.makedirs(bindir, exist_ok=True)
    log = os.path.join(vssd.root, "systemctl.log")
    with open(os.path.join(bindir, "systemctl"), "w") as f:
        f.write('#!/bin/sh\necho "$1 $2 $3 $(head -c 5 %s 2>/dev/null)" >> %s\n'
                % (watched, log))
    os.chmod(os.path.join(bindir, "systemctl"), 0o755)
    return log


def files_only(manifest):
    """A manifest without the times of directories (what is renamed into
    a directory at boot changes them)."""
    return {k: {x: y for x, y in v.items() if x != "mtime" or v["kind"] != 0o040000}
            for k, v in manifest.items()}


def lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


# ---- the SQLite writer ----

def sqlite_writer(vssd, db):
    log = os.path.join(vssd.root, "sqlite.log")
    w = vssd.spawn([SQLITE_WRITER, "--run-dir", vssd.run, db], stderr=open(log, "ab"))
    deadline = time.time() + 10
    while "sqlite" not in writers(vssd):
        assert time.time() < deadline and w.poll() is None, lines(log)
        time.sleep(0.05)
    return w, log


def check_prefix(db):
    """integrity_check, and a gap-free prefix of the commits (each commit
    adds row n to both tables): the last commit whole."""
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        nt, mt = con.execute("SELECT count(*), max(n) FROM t").fetchone()
        nu, mu = con.execute("SELECT count(*), max(n) FROM u").fetchone()
    finally:
        con.close()
    assert nt == mt and nu == mu, "rows missing"
    assert mt == mu, "a transaction is half there"
    return mt


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_sqlite_restore_closes_and_reopens(vssd, fsvol, workdir, mode):
    repo = os.path.join(workdir, "repo")
    db = os.path.join(fsvol, "db", "app.db")
    os.makedirs(os.path.dirname(db))
    c = vssd.spawn([sys.executable, "-c", COMMITTER, db, mode], stdout=subprocess.PIPE,
                   text=True)
    assert c.stdout.readline().strip() == "ready"
    w, wlog = sqlite_writer(vssd, db)
    ids = []
    for kind in ("full", "incremental", "incremental"):
        time.sleep(0.4)
        ids.append(backup(vssd, repo, fsvol, "--type", kind)["id"])
    assert c.poll() is None
    c.kill()
    c.wait()
    live = check_prefix(db)
    # Each backup restored elsewhere is a consistent prefix; the writer
    # leaves its live database open for those.
    counts = []
    for i, bid in enumerate(ids):
        out, _ = restore(vssd, repo, bid, "--to", os.path.join(workdir, "to%d" % i))
        counts.append(check_prefix(os.path.join(workdir, "to%d" % i) + db))
        comp = out["components"][0]
        assert comp["writer"] == "sqlite" and comp["status"] == "all", out
        assert comp["taken_by"] and comp["name"] == "app.db"
    assert counts == sorted(counts) and 0 < counts[0] and counts[-1] <= live
    assert not any("closed for the restore" in l for l in lines(wlog))
    # In place: closed at pre_restore, opened again (and checked) at
    # post_restore; the database is the backup's.
    out, _ = restore(vssd, repo, ids[1], "--component", "sqlite:" + db[1:])
    assert out["components"][0]["status"] == "all" and out["writers"] == 1, out
    log = lines(wlog)
    closed = [i for i, l in enumerate(log) if l.endswith(db + ": closed for the restore")]
    opened = [i for i, l in enumerate(log) if l.endswith(db + ": opened again after the "
                                                          "restore")]
    assert len(closed) == 1 and len(opened) == 1 and closed[0] < opened[0], log
    assert check_prefix(db) == counts[1] < live
    assert w.poll() is None
    # The writer works on the restored database: a program commits again,
    # and the next backup holds it consistent.
    c = vssd.spawn([sys.executable, "-c", COMMITTER.replace("n = 0", "n = %d" % counts[1]),
                    db, mode], stdout=subprocess.PIPE, text=True)
    assert c.stdout.readline().strip() == "ready"
    time.sleep(0.4)
    last = backup(vssd, repo, fsvol)["id"]
    c.kill()
    c.wait()
    restore(vssd, repo, last, "--to", os.path.join(workdir, "last"))
    assert check_prefix(os.path.join(workdir, "last") + db) > counts[1]


# ---- writers failing ----

def test_writer_failing_pre_restore_stops_the_restore(vssd, fsvol, workdir):
    repo = os.path.join(workdir, "repo")
    data, log = data_writer(vssd, fsvol, "w", "--fail-at", "pre_restore")
    other = os.path.join(fsvol, "plain")
    write(other, b"plain at backup")
    bid = backup(vssd, repo, fsvol)["id"]
    write(os.path.join(data, "a"), b"changed since\n")
    os.unlink(os.path.join(data, "sub", "b"))
    write(other, b"plain changed")
    before = tree_manifest(fsvol)
    out, r = restore(vssd, repo, bid, ok=False)
    assert r.returncode == 1
    assert "writer w failed at pre_restore: w was told to fail at pre_restore" in r.stderr
    assert "before anything was restored" in r.stderr
    # Nothing written: not the writer's files, not the others.
    assert diff(before, tree_manifest(fsvol)) == ""
    assert out["files"] == 0 and out["components"][0]["status"] == "none"
    evs = [e[1] for e in events(log)]
    assert evs[-2:] == ["pre_restore", "abort"] and "post_restore" not in evs, evs
    # The slot is free again: the next restore (without writers) runs.
    restore(vssd, repo, bid, "--no-writers")
    assert open(other, "rb").read() == b"plain at backup"


def test_post_restore_failure_is_reported(vssd, fsvol, workdir):
    repo = os.path.join(workdir, "repo")
    data, log = data_writer(vssd, fsvol, "w", "--fail-at", "post_restore",
                            "--kind", "recovery_failed")
    at_backup = tree_manifest(data)
    bid = backup(vssd, repo, fsvol)["id"]
    write(os.path.join(data, "a"), b"changed since\n")
    out, r = restore(vssd, repo, bid, ok=False)
    assert r.returncode == 1
    assert "writer w failed at post_restore: w was told to fail at post_restore" in r.stderr
    # The files are back; the writer's failure is its state.
    assert diff(at_backup, tree_manifest(data)) == ""
    comp = out["components"][0]
    assert comp["status"] == "all" and "failed at post_restore" in comp["message"], out
    w = writers(vssd)["w"]
    assert w["state_name"] == "failed_at_post_restore"
    assert w["error_kind"] == "recovery_failed"
    post = [e for e in events(log) if e[1] == "post_restore"][-1]
    assert post[2] == "backup=" + bid and post[4].startswith("data:2:original:all:2")


# ---- restore methods ----

@pytest.mark.skipif(systemd_ns.available() is not None, reason=str(systemd_ns.available()))
@pytest.mark.parametrize("method", ["stop_restore_start", "restore_stop_start"])
def test_service_methods_through_systemd(vssd, fsvol, workdir, method):
    """The service a writer names, run by a systemd of the test's own
    (systemd_ns.py; vss restore runs beside it so that its systemctl
    reaches it): stopped before the files and started after them, or
    restarted after them, by systemd itself, whose unit logs the first
    bytes of a file of the component each time it stops or starts."""
    repo = os.path.join(workdir, "repo")
    data, log = data_writer(vssd, fsvol, "w", "--method", method,
                            "--service", "app.service")
    a = os.path.join(data, "a")
    at_backup = tree_manifest(data)
    seen = os.path.join(workdir, "app.log")
    say = "/bin/sh -c 'echo \"%%s $(head -c 5 %s)\" >> %s'" % (a, seen)
    unit = ("[Unit]\nDefaultDependencies=no\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
            "ExecStart=%s\nExecStop=%s\n" % (say % "start", say % "stop"))
    sd = systemd_ns.Systemd(workdir, {"app.service": unit}, os.path.join(workdir, "sd.log"))
    try:
        sd.start()
        bid = backup(vssd, repo, fsvol)["id"]
        write(a, b"a changed\n")
        os.unlink(os.path.join(data, "sub", "b"))
        os.unlink(seen)
        env = env_of(vssd)
        env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
        r = sd.run([VSS, "--run-dir", vssd.run, "restore", "--from", repo, bid, "--json"],
                   check=False, env=env, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        comp = json.loads(r.stdout)["components"][0]
        assert comp["status"] == "all" and comp["files"] == 2, comp
        assert diff(at_backup, tree_manifest(data)) == ""
        if method == "stop_restore_start":
            assert lines(seen) == ["stop a cha", "start a at "]
        else:
            assert lines(seen) == ["stop a at ", "start a at "]
        assert sd.run(["systemctl", "is-active", "app.service"],
                      check=False).stdout.strip() == "active"
    finally:
        sd.stop()


METHODS = ["restore_if_not_there", "restore_if_can_replace", "stop_restore_start",
           "restore_stop_start", "restore_to_alternate_location", "restore_at_reboot",
           "restore_at_reboot_if_cannot_replace", "custom"]


@pytest.mark.parametrize("method", METHODS)
def test_restore_method(vssd, fsvol, workdir, method):
    repo = os.path.join(workdir, "repo")
    data = os.path.join(fsvol, "w-data")
    alt = os.path.join(fsvol, "elsewhere")
    extra = ["--method", method]
    if "stop" in method:
        extra += ["--service", "app.service"]
    if method == "restore_to_alternate_location":
        extra += ["--alt", "%s=%s" % (data, alt)]
    data, log = data_writer(vssd, fsvol, "w", *extra)
    a, b = os.path.join(data, "a"), os.path.join(data, "sub", "b")
    at_backup = tree_manifest(data)
    sysctl = fake_systemctl(vssd, a)
    bid = backup(vssd, repo, fsvol)["id"]
    write(a, b"a changed\n")
    os.unlink(b)
    changed = tree_manifest(data)
    if method == "restore_at_reboot_if_cannot_replace":
        subprocess.run(["chattr", "+i", a], check=True)
    try:
        out, r = restore(vssd, repo, bid)
    finally:
        subprocess.run(["chattr", "-i", a], capture_output=True)
    comp = out["components"][0]
    assert comp["method"] == method and comp["taken_by"], out
    pre = [e for e in events(log) if e[1] == "pre_restore"][-1]
    post = [e for e in events(log) if e[1] == "post_restore"][-1]
    state = os.path.join(vssd.root, "restore-state", "restore-at-boot")
    if method in ("restore_if_can_replace", "stop_restore_start", "restore_stop_start"):
        assert diff(at_backup, tree_manifest(data)) == ""
        assert comp["status"] == "all" and comp["files"] == 2
    if method == "restore_if_not_there":
        # a is there: none of the component's files is written ...
        assert diff(changed, tree_manifest(data)) == ""
        assert comp["status"] == "none" and "restore_if_not_there: %s is there" % a \
            in comp["message"], comp
        assert out["left"] == 2 and {f["status"] for f in out["not_restored"]} == {"none"}
        # ... and when none is, all are.
        subprocess.run(["rm", "-rf", data], check=True)
        out, _ = restore(vssd, repo, bid)
        assert diff(at_backup, tree_manifest(data)) == ""
        assert out["components"][0]["status"] == "all"
    if method == "stop_restore_start":
        # Stopped before its files were written, started after.
        assert lines(sysctl) == ["stop -- app.service a cha", "start -- app.service a at "]
    if method == "restore_stop_start":
        assert lines(sysctl) == ["restart -- app.service a at "]
    else:
        assert method == "stop_restore_start" or lines(sysctl) == []
    if method == "restore_to_alternate_location":
        assert diff(changed, tree_manifest(data)) == ""
        assert diff(at_backup, tree_manifest(alt)) == ""
        assert pre[4].startswith("data:4:alternate:undefined") and pre[5] == \
            "%s->%s" % (data, alt), pre
        # With --to the mappings apply below it.
        to = os.path.join(workdir, "to")
        restore(vssd, repo, bid, "--to", to)
        assert diff(at_backup, tree_manifest(to + alt)) == ""
        assert not os.path.exists(to + data)
    if method in ("restore_at_reboot", "restore_at_reboot_if_cannot_replace"):
        staged = 2 if method == "restore_at_reboot" else 1
        assert out["staged"] == staged and comp["status"] == "staged", out
        # Nothing replaced what was there yet (b, missing, may be in place:
        # it replaced nothing, if it could).
        assert open(a, "rb").read() == b"a changed\n"
        assert os.path.exists(b) == (method != "restore_at_reboot")
        assert len(os.listdir(state)) == 1
        r = run_vss(vssd, "restore", "--at-boot", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["files"] == staged, r.stderr
        assert diff(files_only(at_backup), files_only(tree_manifest(data))) == ""
        assert os.listdir(state) == []
        assert not [n for n in os.listdir(data) if n.startswith(".vss-")]
    else:
        assert not os.path.exists(state) or os.listdir(state) == []
    if method == "custom":
        assert diff(changed, tree_manifest(data)) == ""
        assert comp["status"] == "none" and "copy the files by hand" in comp["message"]
    # The writer heard what became of its component.
    assert post[4].split(":")[3] == comp["status"], (post, comp)


# ---- components by name, without a writer, writers that do not take part ----

def test_components_chosen_and_writers_left_out(vssd, fsvol, workdir):
    repo = os.path.join(workdir, "repo")
    d1, log1 = data_writer(vssd, fsvol, "one")
    d2, log2 = data_writer(vssd, fsvol, "two", "--writer-restore", "never")
    plain = os.path.join(fsvol, "plain")
    write(plain, b"plain at backup")
    m1, m2 = tree_manifest(d1), tree_manifest(d2)
    bid = backup(vssd, repo, fsvol)["id"]
    for d in (d1, d2):
        write(os.path.join(d, "a"), b"changed\n")
    write(plain, b"plain changed")
    out, r = restore(vssd, repo, bid, "--component", "nobody:data", ok=False)
    assert "has no component nobody:data" in r.stderr
    # Only writer one's component, and only its files (the directory that
    # holds them is not one of them: made if missing, else left as it is).
    out, _ = restore(vssd, repo, bid, "--component", "one:data")
    assert [c["writer"] for c in out["components"]] == ["one"]
    m1.pop(".")
    assert diff(m1, {k: v for k, v in tree_manifest(d1).items() if k != "."}) == ""
    assert open(os.path.join(d2, "a"), "rb").read() == b"changed\n"
    assert open(plain, "rb").read() == b"plain changed"
    assert [e[1] for e in events(log2)].count("pre_restore") == 0
    # Everything: writer two (writer_restore "never") gets no event, its
    # files come back all the same.
    out, _ = restore(vssd, repo, bid)
    assert diff(m2, tree_manifest(d2)) == "" and open(plain, "rb").read() == b"plain at backup"
    two = [c for c in out["components"] if c["writer"] == "two"][0]
    assert two["status"] == "all" and two["taken_by"] is None
    assert [e[1] for e in events(log2)].count("pre_restore") == 0
    assert [e[1] for e in events(log1)].count("pre_restore") == 2
    # A writer that started again (a new instance of the same class) takes
    # part in the restore of what its old instance backed up.
    for p in vssd.helpers:
        if p.args[0].endswith("vss-test-writer") and "one" in p.args:
            p.terminate()
            p.wait()
    deadline = time.time() + 10
    while "one" in writers(vssd):
        assert time.time() < deadline
        time.sleep(0.05)
    start_writer(vssd, "one", log1 + ".2", "--path", d1)
    out, _ = restore(vssd, repo, bid, "--component", "one:data")
    assert out["components"][0]["taken_by"] == writers(vssd)["one"]["instance"]
    assert [e[1] for e in events(log1 + ".2")][-2:] == ["pre_restore", "post_restore"]


def test_without_vssd(vssd, fsvol, workdir):
    repo = os.path.join(workdir, "repo")
    data, log = data_writer(vssd, fsvol, "w")
    plain = os.path.join(fsvol, "plain")
    write(plain, b"at backup")
    with_writers = backup(vssd, repo, fsvol)["id"]
    plain_only = backup(vssd, repo, fsvol, "--no-writers")["id"]
    write(plain, b"changed")
    vssd.stop()
    # A backup of plain files needs no vssd; one with writers says why not
    # and writes nothing, unless told to go without them.
    restore(vssd, repo, plain_only)
    assert open(plain, "rb").read() == b"at backup"
    write(plain, b"changed")
    out, r = restore(vssd, repo, with_writers, ok=False)
    assert r.returncode == 3 and "--no-writers" in r.stderr, r.stderr
    assert open(plain, "rb").read() == b"changed"
    restore(vssd, repo, with_writers, "--no-writers")
    assert open(plain, "rb").read() == b"at backup"


# ---- the hooks writer ----

def test_hooks_pre_and_post_restore(vssd, fsvol, workdir):
    from test_writers import start_hooks
    repo = os.path.join(workdir, "repo")
    out = os.path.join(vssd.root, "hooks.out")
    hdir = hooks_dir(vssd.root, {
        "10-a": 'echo "a $1 $VSS_RESTORE_BACKUP to=$VSS_RESTORE_TO '
                'status=$VSS_RESTORE_STATUS" >> %s' % out,
        "20-b": '[ "$1" = pre-restore ] && [ -e %s/refuse ] && exit 4; echo "b $1" >> %s'
                % (vssd.root, out),
    })
    start_hooks(vssd, hdir)
    write(os.path.join(fsvol, "f"), b"at backup")
    bid = backup(vssd, repo, fsvol)["id"]
    os.unlink(out)
    write(os.path.join(fsvol, "f"), b"changed")
    restore(vssd, repo, bid)
    assert lines(out) == ["a pre-restore %s to= status=" % bid, "b pre-restore",
                          "a post-restore %s to= status=all" % bid, "b post-restore"]
    assert open(os.path.join(fsvol, "f"), "rb").read() == b"at backup"
    # A hook failing pre-restore: the restore stops, nothing written, and
    # the hooks that had run pre-restore hear it was aborted.
    os.unlink(out)
    write(os.path.join(fsvol, "f"), b"changed")
    write(os.path.join(vssd.root, "refuse"), b"")
    _, r = restore(vssd, repo, bid, "--to", os.path.join(workdir, "to"), ok=False)
    assert "writer hooks failed at pre_restore: hook 20-b pre-restore failed with exit " \
        "status 4" in r.stderr, r.stderr
    assert lines(out) == ["a pre-restore %s to=%s/to status=" % (bid, workdir),
                          "a post-restore %s to=%s/to status=aborted" % (bid, workdir)]
    assert not os.path.exists(os.path.join(workdir, "to", fsvol[1:]))
    assert writers(vssd)["hooks"]["state_name"] == "failed_at_pre_restore"


# ---- failures in the middle ----

def test_full_disk_during_restore(vssd, fsvol, workdir):
    repo = os.path.join(workdir, "repo")
    data, log = data_writer(vssd, fsvol, "w")
    write(os.path.join(data, "big"), os.urandom(3 << 20))
    bid = backup(vssd, repo, fsvol)["id"]
    small = os.path.join(workdir, "small")
    os.makedirs(small)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small], check=True)
    try:
        out, r = restore(vssd, repo, bid, "--to", small, ok=False)
        assert r.returncode == 1 and "No space left on device" in r.stderr, r.stderr
        assert "%s/big" % data in r.stderr
        # No half-written file under a real name, nothing left beside.
        leftovers = [os.path.join(dp, n) for dp, dn, fn in os.walk(small) for n in fn
                     if n.startswith(".vss-") or n == "big"]
        assert leftovers == []
        # The writer was told, and is not left let go of.
        post = [e for e in events(log) if e[1] == "post_restore"][-1]
        assert post[4].split(":")[3] in ("failed", "none"), post
        assert out["components"][0]["status"] in ("failed", "none")
        assert "No space left" in out["components"][0]["message"]
    finally:
        subprocess.run(["umount", small], check=True)
    assert vssd.json("status")["backup"] is None


def test_restore_killed_mid_run(vssd, fsvol, workdir):
    repo = os.path.join(workdir, "repo")
    db = os.path.join(fsvol, "db", "app.db")
    os.makedirs(os.path.dirname(db))
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=wal")
    con.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    con.execute("INSERT INTO t VALUES (1)")
    con.close()
    big = os.path.join(fsvol, "db", "zz-big")
    write(big, os.urandom(1 << 20) * 150)
    old = sha(big)
    w, wlog = sqlite_writer(vssd, db)
    bid = backup(vssd, repo, fsvol)["id"]
    write(big, os.urandom(1 << 20) * 150)
    new = sha(big)
    p = subprocess.Popen([VSS, "--run-dir", vssd.run, "restore", "--from", repo, bid],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=env_of(vssd))
    # Killed while it writes the big file, the database let go of.
    deadline = time.time() + 60
    while time.time() < deadline and not [n for n in os.listdir(os.path.dirname(big))
                                          if n.startswith(".vss-restore-")]:
        assert p.poll() is None, p.stderr.read()
        time.sleep(0.005)
    assert any(l.endswith("closed for the restore") for l in lines(wlog))
    p.send_signal(signal.SIGKILL)
    p.wait()
    # vssd aborts the restore: the writer opens its database again.
    deadline = time.time() + 10
    while not any(l.endswith(db + ": opened again after the restore") for l in lines(wlog)):
        assert time.time() < deadline, lines(wlog)
        time.sleep(0.05)
    while vssd.json("status")["backup"] is not None:
        assert time.time() < deadline
        time.sleep(0.05)
    assert w.poll() is None and writers(vssd)["sqlite"]["state_name"] == "stable"
    # Whole files only: the old or the new, never half of one.
    assert sha(big) in (old, new)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    # The next restore runs, and the next backup with the writer.
    restore(vssd, repo, bid)
    assert sha(big) == old
    backup(vssd, repo, fsvol)


def test_two_backups_into_one_repository_at_once(vssd, fsvol, workdir):
    repo = os.path.join(workdir, "repo")
    write(os.path.join(fsvol, "one"), os.urandom(4 << 20))
    # The repository exists (two backups that both make it at once race:
    # the second can find it half made).
    first = backup(vssd, repo, fsvol, "--no-writers")["id"]
    write(os.path.join(fsvol, "one"), os.urandom(4 << 20))
    results = [None, None]

    def run(i):
        results[i] = run_vss(vssd, "backup", "create", "--to", repo, "--for", fsvol,
                             "--json", "--no-writers")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    ids = sorted(json.loads(r.stdout)["id"] for r in results)
    assert [b["id"] for b in vssd.json("backup", "list", "--in", repo)["backups"]] == \
        [first] + ids
    assert os.listdir(os.path.join(repo, "tmp")) == []
    assert run_vss(vssd, "backup", "verify", "--in", repo).returncode == 0
    for i, bid in enumerate(ids):
        restore(vssd, repo, bid, "--to", os.path.join(workdir, "to%d" % i))
        assert sha(os.path.join(workdir, "to%d" % i) + fsvol + "/one") == \
            sha(os.path.join(fsvol, "one"))


def test_restore_at_boot_unit_is_valid(tmp_path):
    """The unit that puts staged restores in place at boot
    (data/vss-restore-at-boot.service.in) is one systemd accepts."""
    import shutil
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of Debian's systemd package"
    unit = open(os.path.join(BUILD, "vss-restore-at-boot.service")).read()
    exec_line = next(l for l in unit.splitlines() if l.startswith("ExecStart="))
    assert exec_line.endswith("/vss restore --at-boot")
    path = tmp_path / "vss-restore-at-boot.service"
    path.write_text(unit.replace(exec_line, "ExecStart=%s restore --at-boot" % VSS))
    r = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def test_a_user_may_not_drive_the_writers(vssd, fsvol, workdir):
    """restore.* is the operator's (doc/security.md): a user without the
    role restoring a backup with writers is refused before anything is
    written, and no writer hears of it."""
    repo = os.path.join(workdir, "repo")
    data, log = data_writer(vssd, fsvol, "w")
    bid = backup(vssd, repo, fsvol)["id"]
    to = os.path.join(workdir, "to")
    os.makedirs(to)
    os.chown(to, 65534, 65534)
    for p in (workdir, vssd.root):
        os.chmod(p, 0o755)
    subprocess.run(["chmod", "-R", "a+rX", repo], check=True)
    r = vssd.vss("restore", "--from", repo, bid, "--to", to, user=65534, check=False)
    assert r.returncode == 1 and "permission denied" in r.stderr, r.stderr
    assert os.listdir(to) == []
    assert "pre_restore" not in [e[1] for e in events(log)]
