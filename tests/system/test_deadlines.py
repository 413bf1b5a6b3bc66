"""Deadlines: nothing a requester, a writer or a
stopped vssd does holds backups or a freeze hostage.

- holds: a requester that holds a backup session or a set and goes silent
  loses it at its lease (writers get abort, the set is deleted, the slot is
  free, its next call says why); one that stays alive keeps it, however
  long, until its limit; root can end another requester's backup; status
  shows who holds what, since and until when (doc/writers.md, "Holds");
- writers: one that does not answer fails one backup, is then left out of
  the next ones (a backup that requires it fails at once) until it answers
  again; several of them cost one deadline together;
- the freeze bound with vssd stopped (SIGSTOP, or under a tracer): the
  guardian thaws within its bound plus a few seconds, continuing vssd, or
  aborting its FUSE connection and killing it (guardian.h).
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import VSS
from test_fs import wait_stopped, write_returns
from test_writers import Client, events, fsvol, start_writer, writers  # noqa: F401


def wait_for(what, timeout=15, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = what()
        if v:
            return v
        time.sleep(step)
    return what()


# ---- holds ----
def test_stalled_requester_loses_its_backup_and_the_next_proceeds(vssd, fsvol):
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "w", log)
    c = Client(vssd)
    r = c.call("backup.begin", lease_ms=1500)
    assert r["ok"], r
    assert r["result"]["lease_ms"] == 1500
    session = r["result"]["session"]
    assert c.call("backup.prepare")["ok"]
    r = c.call("shadow.create", targets=[fsvol])
    assert r["ok"], r
    set_id = r["result"]["set"]
    st = vssd.json("status")
    assert st["backup"]["session"] == session
    assert st["backup"]["uid"] == 0 and st["backup"]["set"] == set_id
    assert st["backup"]["lease_ms"] == 1500
    assert st["backup"]["since"] < st["backup"]["until"]
    assert "backup slot: backup, session %d" % session in vssd.vss("status").stdout
    # The requester stays connected and says nothing.
    assert wait_for(lambda: vssd.shadows() == []), vssd.shadows()
    assert events(log)[-1] == ["w", "abort"]
    assert writers(vssd)["w"]["state_name"] == "stable"
    assert vssd.json("status")["backup"] is None
    assert "backup (session %d) aborted: vssd did not hear from its requester" % session \
        in vssd.log()
    # The slot is free: the next backup runs at once.
    r = vssd.vss("exec", "--for", fsvol, "--", "true", check=False)
    assert r.returncode == 0, r.stderr
    assert events(log)[-1] == ["w", "backup_complete", "succeeded=1"]
    # The stalled requester's next call says why, once.
    r = c.call("backup.complete")
    assert not r["ok"] and r["error"]["code"] == "ETIMEDOUT", r
    assert "lease" in r["error"]["message"] and set_id in r["error"]["message"]
    r = c.call("backup.complete")
    assert not r["ok"] and r["error"]["code"] == "ENOENT", r
    c.close()


def test_held_set_outside_a_backup_is_deleted_at_its_lease(vssd, fsvol):
    c = Client(vssd)
    r = c.call("shadow.create", targets=[fsvol], hold=True, lease_ms=1000)
    assert r["ok"], r
    set_id = r["result"]["set"]
    assert vssd.shadows()[0]["state"] == "in-progress"
    held = vssd.json("status")["held_sets"]
    assert [h["set"] for h in held] == [set_id] and held[0]["lease_ms"] == 1000
    assert wait_for(lambda: vssd.shadows() == []), vssd.shadows()
    assert vssd.json("status")["held_sets"] == []
    r = c.call("set.complete", set=set_id)
    assert not r["ok"] and r["error"]["code"] == "ETIMEDOUT", r
    assert "deleted before set.complete" in r["error"]["message"]
    # One that is completed in time stays.
    r = c.call("shadow.create", targets=[fsvol], hold=True, lease_ms=1000)
    assert r["ok"], r
    assert c.call("set.complete", set=r["result"]["set"])["ok"]
    time.sleep(1.5)
    assert [s["state"] for s in vssd.shadows()] == ["valid"]
    assert vssd.json("status")["held_sets"] == []
    c.close()


def test_long_alive_backup_is_not_cut_off(daemon_factory):
    d = daemon_factory(args=["--hold-lease", "1"])
    mnt = os.path.join(d.root, "mnt")
    d.create_volume("fs", "96M")
    d.vss("volume", "mount", "fs", mnt, "--mkfs", "ext4")
    with open(os.path.join(mnt, "f"), "w") as f:
        f.write("before")
    # vss exec reads its shadow for four leases: the requester library
    # renews the lease by itself.
    out = os.path.join(d.root, "out")
    p = d.spawn([VSS, "--run-dir", d.run, "exec", "--for", mnt, "--", "sh", "-c",
                 'sleep 4; cat "$VSS_SHADOW_PATH_1/f" > %s' % out],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: d.json("status")["backup"]), d.log()
    first = d.json("status")["backup"]
    assert first["lease_ms"] == 1000 and first["kind"] == "backup"
    time.sleep(1.5)
    later = d.json("status")["backup"]
    assert later["session"] == first["session"]
    assert later["until"] > first["until"]       # renewed meanwhile
    stdout, stderr = p.communicate(timeout=30)
    assert p.returncode == 0, stderr + d.log()[-2000:]
    with open(out) as f:
        assert f.read() == "before"
    assert "aborted" not in d.log()
    # A raw requester that asks for a longer lease needs no renewal for it.
    c = Client(d)
    assert c.call("backup.begin", lease_ms=4000)["ok"]
    assert c.call("shadow.create", targets=[mnt])["ok"]
    time.sleep(2.5)
    assert c.call("backup.complete")["ok"]
    c.close()


def test_hold_limit_ends_even_an_alive_backup(vssd, fsvol):
    c = Client(vssd)
    r = c.call("backup.begin", hold_ms=2000)
    assert r["ok"] and r["result"]["hold_ms"] == 2000, r
    assert c.call("shadow.create", targets=[fsvol])["ok"]
    t0 = time.time()
    # Heard from all along (backup.status renews the lease), yet ended.
    while time.time() - t0 < 10:
        r = c.call("backup.status")
        assert r["ok"], r
        if not r["result"]["active"]:
            break
        time.sleep(0.2)
    assert not r["result"]["active"]
    assert "its limit" in r["result"]["ended"]
    assert vssd.shadows() == []
    r = c.call("backup.abort")
    assert r["ok"] and not r["result"]["aborted"] and "limit" in r["result"]["ended"]
    c.close()


def test_root_aborts_another_requesters_backup(daemon_factory, workdir):
    import grp
    try:
        operators = grp.getgrnam("users").gr_gid
    except KeyError:
        pytest.skip("no group 'users' to stand for the operator group")
    d = daemon_factory(args=["--operator-group", "users"])
    for p in (workdir, d.root):
        os.chmod(p, 0o755)
    d.create_volume("v", "16M")
    c = Client(d)
    r = c.call("backup.begin")
    assert r["ok"], r
    session = r["result"]["session"]
    assert c.call("shadow.create", targets=["v"])["ok"]
    # An operator may not end someone else's backup.
    r = d.vss("abort", "backup", session, user=65534, groups=[operators], check=False)
    assert r.returncode == 1 and "only root" in r.stderr, r.stderr
    assert d.json("status")["backup"]["session"] == session
    r = d.vss("abort", "backup", check=False)
    assert r.returncode == 0, r.stderr
    assert "backup session %d aborted" % session in r.stdout
    assert d.shadows() == [] and d.json("status")["backup"] is None
    r = c.call("backup.complete")
    assert not r["ok"] and r["error"]["code"] == "ECANCELED", r
    assert "root (pid" in r["error"]["message"]
    assert d.vss("abort", "backup", check=False).returncode == 1
    c.close()


# ---- writers ----
def test_unresponsive_writer_fails_one_backup_then_is_left_out(vssd, fsvol):
    log = os.path.join(vssd.root, "events")
    start_writer(vssd, "ok", log, "--class", "front")
    dead = start_writer(vssd, "dead", log, "--hang-at", "prepare_snapshot",
                        "--timeout", "4000")
    r = vssd.vss("create", "shadow", "--for", fsvol, check=False)
    assert r.returncode == 1
    assert "writer dead failed at prepare_snapshot: no answer within 4000 ms" in r.stderr
    w = writers(vssd)["dead"]
    assert w["state_name"] == "failed_at_prepare_snapshot" and w["error_kind"] == "timeout"
    assert w["unresponsive"] and "left out of backups" in w["last_error"]
    assert "dead" in vssd.vss("list", "writers").stdout
    # The next backups go on without it, and it stays failed.
    open(log, "w").close()
    r = vssd.vss("create", "shadow", "--for", fsvol, "--json", check=False)
    assert r.returncode == 0, r.stderr
    assert [e[1] for e in events(log) if e[0] == "ok"] == [
        "prepare_snapshot", "freeze", "thaw", "post_snapshot"]
    assert [e for e in events(log) if e[0] == "dead"] == []
    assert "backup: writer dead left out" in vssd.log()
    assert writers(vssd)["dead"]["unresponsive"]
    assert writers(vssd)["dead"]["state_name"] == "failed_at_prepare_snapshot"
    # A backup that requires it fails at once, saying why.
    c = Client(vssd)
    t0 = time.time()
    r = c.call("backup.begin", require_writers=["dead"])
    assert not r["ok"] and r["error"]["code"] == "ETIMEDOUT", r
    assert time.time() - t0 < 2, "waited for the writer again"
    assert "required writer dead is not answering" in r["error"]["message"]
    assert "no answer to prepare_snapshot within 4000 ms" in r["error"]["message"]
    c.close()
    # It answers (late): it is back, stable, and in the next backup.
    dead.send_signal(signal.SIGUSR1)
    assert wait_for(lambda: not writers(vssd)["dead"]["unresponsive"]), writers(vssd)
    assert writers(vssd)["dead"]["state_name"] == "stable"
    assert "writer dead (" in vssd.log() and "answers again" in vssd.log()
    open(log, "w").close()
    vssd.shadow(fsvol)
    assert [e[1] for e in events(log) if e[0] == "dead"] == [
        "prepare_snapshot", "freeze", "thaw", "post_snapshot"]


def test_dead_writers_cost_one_deadline_together(vssd, fsvol):
    log = os.path.join(vssd.root, "events")
    for name in ("d1", "d2", "d3"):
        start_writer(vssd, name, log, "--hang-at", "identify", "--timeout", "2500")
    start_writer(vssd, "ok", log)
    t0 = time.time()
    r = vssd.vss("exec", "--for", fsvol, "--", "true", check=False)
    took = time.time() - t0
    assert r.returncode == 0, r.stderr
    # One after the other they would take 7.5 s.
    assert took < 6, took
    ws = writers(vssd)
    assert all(ws[n]["state_name"] == "failed_at_identify" and ws[n]["unresponsive"]
               for n in ("d1", "d2", "d3")), ws
    assert events(log)[-1] == ["ok", "backup_complete", "succeeded=1"]


# ---- the freeze bound with vssd stopped ----
def stopped_during_a_freeze(daemon_factory):
    """A vssd that holds a set's freeze 8 s with a bound of 2 s, an ext4
    volume at mnt, and `vss create shadow` of it inside the freeze."""
    d = daemon_factory(env={"VSS_TEST_FREEZE_HOLD_MS": "8000",
                            "VSS_TEST_FREEZE_LIMIT_MS": "2000"})
    mnt = os.path.join(d.root, "mnt")
    d.create_volume("g", "128M")
    d.vss("volume", "mount", "g", mnt, "--mkfs", "ext4")
    c = d.spawn([VSS, "--run-dir", d.run, "create", "shadow", "--for", mnt],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: "holding the freeze" in d.log(), 10)
    return d, mnt, c


def test_guardian_continues_a_stopped_vssd(daemon_factory):
    d, mnt, c = stopped_during_a_freeze(daemon_factory)
    try:
        d.proc.send_signal(signal.SIGSTOP)
        wait_stopped(d.proc.pid)
        # The bound (2 s) and the guardian's first wait (1 s), with margin.
        assert write_returns(os.path.join(mnt, "after"), 10), "still frozen"
        assert "is stopped; sent it SIGCONT" in d.log()
        assert "exceeded its bound; thawed" in d.log()
    finally:
        d.proc.send_signal(signal.SIGCONT)
    _, stderr = c.communicate(timeout=30)
    assert c.returncode == 1 and "frozen longer than 2000 ms" in stderr, stderr
    assert d.proc.poll() is None
    assert d.shadows() == []
    with open(os.path.join(mnt, "later"), "w") as f:
        f.write("x")
    subprocess.run(["sync", "-f", mnt], timeout=10, check=True)


TRACER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_O_TRACECLONE, WALL = 0x4206, 0x4207, 8, 0x40000000
pid, seen = int(sys.argv[1]), set()
while True:
    tids = set(int(t) for t in os.listdir("/proc/%d/task" % pid)) - seen
    if not tids:
        break
    for t in tids:
        if libc.ptrace(PTRACE_SEIZE, t, None, ctypes.c_void_p(PTRACE_O_TRACECLONE)) == 0:
            libc.ptrace(PTRACE_INTERRUPT, t, None, None)
        seen.add(t)
print("ready", flush=True)
while True:
    try:
        os.waitpid(-1, WALL)
    except ChildProcessError:
        break
"""


def test_guardian_kills_a_vssd_it_cannot_continue(daemon_factory):
    """vssd stopped by a tracer (a debugger): SIGCONT does not help, so the
    guardian aborts its FUSE connection (the thaw then returns) and kills
    it; a new vssd cleans up and mounts the volume again."""
    d, mnt, c = stopped_during_a_freeze(daemon_factory)
    tracer = d.spawn([sys.executable, "-c", TRACER, str(d.proc.pid)],
                     stdout=subprocess.PIPE, text=True)
    assert tracer.stdout.readline().strip() == "ready"
    # The bound (2 s) and the escalation (4 s), with margin.
    assert write_returns(os.path.join(mnt, "after"), 15), "still frozen"
    assert d.proc.wait(15) == -signal.SIGKILL
    tracer.wait(15)
    log = d.log()
    assert "aborting the FUSE connection" in log and "killing vssd" in log
    assert "exceeded its bound; thawed" in log
    c.communicate(timeout=15)
    assert c.returncode != 0
    # What a service manager does: start it again; start's cleanup runs.
    d.extra_env = {}
    d.start()
    assert "cleanup: unmounted %s" % mnt in d.log()
    assert d.volume("g")["mount"] == mnt
    with open(os.path.join(mnt, "again"), "w") as f:
        f.write("x")
    subprocess.run(["sync", "-f", mnt], timeout=10, check=True)
    d.shadow(mnt)
