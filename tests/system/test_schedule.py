"""Scheduled shadows (vss schedule): vssd runs them by itself on its one
timer, each run's retention deletes only shadows that schedule made, they
survive a restart, and what is refused is refused (no retention, a path on
no volume, bad values, roles).  The retention rule itself, over a year of
fake time, is tests/service/test_timeline.c."""
import calendar
import grp
import json
import os
import subprocess
import time

import pytest

from conftest import BUILD

NOBODY = 65534

def mounted(d, name="v", size="64M"):
    d.create_volume(name, size)
    mnt = os.path.join(d.root, "mnt-" + name)
    d.vss("volume", "mount", name, mnt, "--mkfs", "ext4")
    return mnt


def ours(d, sid):
    return [s for s in d.shadows() if s["schedule"] == sid]


def test_runs_by_itself_and_keeps_by_its_rule(daemon_factory):
    d = daemon_factory(env={"VSS_TEST_EVERY_MIN_S": "1"})
    mnt = mounted(d)
    manual = d.shadow("v")["shadows"][0]["id"]
    sid = d.json("schedule", "add", "--for", mnt, "--every", "1s", "--keep", "hourly=1",
                 "--no-writers")["id"]
    # vssd's timer: a run a second; each keeps the hour's first and the newest.
    deadline = time.time() + 20
    seen = set()
    while time.time() < deadline:
        seen |= {s["set"] for s in ours(d, sid)}
        if len(seen) >= 4:
            break
        time.sleep(0.2)
    assert len(seen) >= 4, d.log()[-3000:]
    d.vss("schedule", "delete", sid)           # no more runs from here
    assert ours(d, sid) == []                   # its shadows are ordinary ones now
    left = [s for s in d.shadows() if s["id"] != manual]
    hours = {time.strftime("%Y%m%d%H", time.localtime(s["created_ns"] / 1e9)) for s in left}
    # The first of each hour the runs spanned (one, or two across an hour),
    # and the newest; every run in between was deleted.
    assert len(left) == len(hours) + 1 or (len(left) == len(hours) and len(left) <= 2), left
    assert manual in {s["id"] for s in d.shadows()}
    assert "deleted: the retention of schedule %s" % sid in d.log()


def test_run_now_retention_and_restart(daemon_factory):
    d = daemon_factory()
    mnt = mounted(d)
    sid = d.json("schedule", "add", "--for", mnt, "--at", "03:00", "--on", "mon-fri",
                 "--keep", "daily=1", "--persistent")["id"]
    first = d.json("schedule", "run", sid[:8])
    assert first["schedule"] == sid and first["deleted"] == 0 and len(first["shadows"]) == 1
    with open(os.path.join(mnt, "f"), "w") as f:
        f.write("changed")
    second = d.json("schedule", "run", sid)
    # Today's first run is kept (daily=1), the newest too: nothing to delete.
    assert second["deleted"] == 0
    third = d.vss("schedule", "run", sid).stdout
    assert third.startswith("Schedule %s ran: set " % sid) and "1 deleted" in third, third
    kept = {s["set"] for s in ours(d, sid)}
    assert first["set"] in kept and second["set"] not in kept and len(kept) == 2
    listed = d.json("schedule", "list")["schedules"]
    assert len(listed) == 1
    s = listed[0]
    assert s["targets"] == [mnt] and s["at"] == "03:00" and s["every_s"] is None
    assert s["on"] == ["mon", "tue", "wed", "thu", "fri"] and s["keep"]["daily"] == 1
    assert s["persistent"] and not s["no_writers"] and s["shadows"] == 2
    assert s["last_error"] is None and s["last_run"]
    table = d.vss("schedule", "list").stdout
    assert sid in table and "at 03:00 on mon,tue,wed,thu,fri" in table and "daily=1" in table
    # Kept across a restart: the schedule and which shadows are its.
    d.restart()
    assert [x["id"] for x in d.json("schedule", "list")["schedules"]] == [sid]
    assert {x["set"] for x in ours(d, sid)} == kept
    d.vss("schedule", "delete", sid)
    assert d.json("schedule", "list") == {"schedules": []}
    assert d.vss("schedule", "list").stdout.strip() == "No items found that satisfy the query."
    # Deleting the schedule left its shadows.
    assert {x["set"] for x in d.shadows()} == kept


def test_refusals(vssd, workdir):
    mnt = mounted(vssd)
    elsewhere = os.path.join(workdir, "not-a-volume")
    os.mkdir(elsewhere)

    def add(*args, user=None):
        return vssd.vss("schedule", "add", *args, check=False, user=user)

    r = add("--for", mnt, "--every", "1h")
    assert r.returncode == 1 and "no retention" in r.stderr, r.stderr
    r = add("--for", mnt, "--every", "1h", "--keep", "hourly=0,daily=0")
    assert r.returncode == 1 and "no retention" in r.stderr, r.stderr
    r = add("--for", elsewhere, "--every", "1h", "--keep", "daily=3")
    assert r.returncode == 1 and "vss: error:" in r.stderr, r.stderr
    for bad in (["--every", "1h", "--at", "03:00"], [], ["--every", "1x"], ["--at", "25:00"],
                ["--at", "03:00", "--on", "funday"], ["--every", "1h", "--on", "mon"],
                ["--every", "1h", "--keep", "hourly"]):
        r = add("--for", mnt, *bad, "--keep", "daily=1") if "--keep" not in bad else \
            add("--for", mnt, *bad)
        assert r.returncode == 2, (bad, r.returncode, r.stderr)
    # Shorter than a minute is for tests only (VSS_TEST_EVERY_MIN_S).
    r = add("--for", mnt, "--every", "5s", "--keep", "daily=1")
    assert r.returncode == 1 and "out of range" in r.stderr, r.stderr
    assert vssd.json("schedule", "list") == {"schedules": []}
    sid = vssd.json("schedule", "add", "--for", "v", "--every", "1h", "--keep", "daily=1")["id"]
    for missing in ("00000000", "0000000", sid + "0"):
        r = vssd.vss("schedule", "run", missing, check=False)
        assert r.returncode == 1, (missing, r.stderr)
    r = vssd.vss("schedule", "delete", "ffffffff-ffff-ffff-ffff-ffffffffffff", check=False)
    assert r.returncode == 1 and "no schedule" in r.stderr


def test_roles(daemon_factory, workdir):
    try:
        operators = grp.getgrnam("users").gr_gid
    except KeyError:
        pytest.skip("no group 'users' to stand for the operator group")
    d = daemon_factory(args=["--operator-group", "users"])
    for p in (workdir, d.root):                 # the socket, for other users
        os.chmod(p, 0o755)
    d.create_volume("v", "16M")

    def as_(groups, *args):
        return d.vss(*args, check=False, user=NOBODY, groups=groups)

    # Adding and deleting are root's (vssd acts on them as root, later),
    # running one now an operator's, listing anyone's.
    r = as_([operators], "schedule", "add", "--for", "v", "--every", "1h", "--keep", "daily=1")
    assert r.returncode == 1 and "permission denied" in r.stderr, r.stderr
    sid = d.json("schedule", "add", "--for", "v", "--every", "1h", "--keep", "daily=1",
                 "--no-writers")["id"]
    for groups in (None, [operators]):
        r = as_(groups, "schedule", "delete", sid)
        assert r.returncode == 1 and "permission denied" in r.stderr, r.stderr
        r = as_(groups, "schedule", "list", "--json")
        assert [s["id"] for s in json.loads(r.stdout)["schedules"]] == [sid]
    r = as_(None, "schedule", "run", sid)
    assert r.returncode == 1 and "permission denied" in r.stderr, r.stderr
    r = as_([operators], "schedule", "run", sid, "--json")
    assert r.returncode == 0, r.stderr
    assert [s["set"] for s in d.shadows()] == [json.loads(r.stdout)["set"]]


def run_times(d, sid):
    """When vssd logged each run of @sid (seconds, wall clock)."""
    out = []
    for line in d.log().splitlines():
        if "schedule %s: set " % sid in line and " taken;" in line:
            stamp = line.split()[0].rstrip("Z")
            out.append(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) +
                       float("0" + stamp[19:]))
    return out


def test_missed_runs_are_made_up_by_one(daemon_factory):
    d = daemon_factory(env={"VSS_TEST_EVERY_MIN_S": "1"})
    d.create_volume("v", "16M")
    sid = d.json("schedule", "add", "--for", "v", "--every", "2s", "--keep", "hourly=1",
                 "--no-writers")["id"]
    deadline = time.time() + 15
    while len(run_times(d, sid)) < 1 and time.time() < deadline:
        time.sleep(0.1)
    d.stop()
    before = len(run_times(d, sid))
    assert before >= 1, d.log()[-2000:]
    time.sleep(7)                   # three runs missed
    d.start()
    deadline = time.time() + 15
    while len(run_times(d, sid)) < before + 2 and time.time() < deadline:
        time.sleep(0.1)
    times = run_times(d, sid)[before - 1:]
    # One run at once for all that were missed, then every 2 s again: no
    # burst (each counts from the end of the one before).
    assert len(times) >= 3, d.log()[-3000:]
    assert times[1] - times[0] >= 7
    assert all(b - a >= 1.9 for a, b in zip(times[1:], times[2:])), times
    d.vss("schedule", "delete", sid)


def test_two_schedules_on_one_volume_never_run_at_once(daemon_factory):
    """Both due every second on vssd's timer, and each also run by hand,
    both at once, while a writer's freeze takes half a second: each run's
    "run begins" line is followed by its own end before the next begins,
    and none failed for the other being busy."""
    d = daemon_factory(env={"VSS_TEST_EVERY_MIN_S": "1"})
    mnt = mounted(d)
    hdir = os.path.join(d.root, "hooks.d")
    os.mkdir(hdir)
    with open(os.path.join(hdir, "10-slow"), "w") as f:
        f.write('#!/bin/sh\n[ "$1" = freeze ] && sleep 0.5\nexit 0\n')
    os.chmod(os.path.join(hdir, "10-slow"), 0o755)
    d.spawn([os.path.join(BUILD, "src", "vss-writer-hooks", "vss-writer-hooks"), "--run-dir",
             d.run, "--hooks-dir", hdir, "--timeout", "10"],
            stderr=open(os.path.join(d.root, "hooks.log"), "ab"))
    deadline = time.time() + 10
    while "hooks" not in {w["name"] for w in d.json("list", "writers")["writers"]}:
        assert time.time() < deadline, "vss-writer-hooks did not start"
        time.sleep(0.05)
    ids = [d.json("schedule", "add", "--for", mnt, "--every", "1s", "--keep", "hourly=2")["id"]
           for _ in range(2)]
    by_hand = [subprocess.Popen([os.path.join(BUILD, "src", "vss", "vss"), "--run-dir", d.run,
                                 "schedule", "run", sid], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for sid in ids * 2]
    for p in by_hand:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    deadline = time.time() + 20
    while min(len(run_times(d, sid)) for sid in ids) < 4 and time.time() < deadline:
        time.sleep(0.2)
    for sid in ids:
        d.vss("schedule", "delete", sid)
    running, runs = None, 0
    for line in d.log().splitlines():
        if "vssd: schedule " not in line:
            continue
        sid = line.split("vssd: schedule ")[1].split(":")[0]
        if line.endswith(": run begins"):
            assert running is None, "%s began while %s ran" % (sid, running)
            running = sid
        elif " taken;" in line or "no set taken" in line:
            assert running == sid and "no set taken" not in line, line
            running, runs = None, runs + 1
    assert runs >= 8, d.log()[-3000:]
