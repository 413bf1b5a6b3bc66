"""Shadow copy sets across hosts (doc/peers.md): two vssd on one machine,
each with its own state and run directories and an ext4 filesystem on its
own volume; host A reaches host B's vssd through the socket its peers file
names (here B's own RUN/vssd.sock, standing in for the SSH-forwarded one).

- one window: a writer writes file i into A's filesystem and then into
  B's; no set ever holds B's file i without A's;
- the members are listed where the set was coordinated (with their host)
  and on their host (with their coordinator); deleting the set on A deletes
  B's member, or says it could not and keeps it listed;
- faults: B killed or stopped inside the set, A killed or stopped while B
  is frozen, a peer that sends what no vssd would: the set fails
  everywhere, every filesystem is thawed within its bound, nothing is
  listed anywhere;
- only root takes sets with other hosts' targets, and a peer takes peer
  requests only from root.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import VSS, frame, recv_frame
from test_deadlines import wait_for
from test_fs import PAIR_WRITER, write_returns
from test_writers import Client, events, start_writer

NOBODY = 65534


class Hosts:
    """Host A (coordinator) and host B (peer), each with volume "data"
    mounted at ROOT/mnt."""

    def __init__(self, daemon_factory, a_env=None, b_env=None, a_args=()):
        self.b = daemon_factory("b", env=b_env, args=["--host-name", "hostb"])
        self.a = daemon_factory("a", env=a_env, start=False,
                                args=["--host-name", "hosta", "--peers", None,
                                      "--peer-timeout", "4"] + list(a_args))
        self.peers = os.path.join(self.a.root, "peers.conf")
        self.a.extra_args[self.a.extra_args.index(None)] = self.peers
        with open(self.peers, "w") as f:
            f.write("# name socket\nhostb %s\n" % os.path.join(self.b.run, "vssd.sock"))
        self.a.start()
        self.mnt = {}
        for name, d in (("a", self.a), ("b", self.b)):
            m = os.path.join(d.root, "mnt")
            d.create_volume("data", "96M")
            d.vss("volume", "mount", "data", m, "--mkfs", "ext4")
            self.mnt[name] = m

    def create(self, *extra, check=True):
        return self.a.vss("create", "shadow", "--for", self.mnt["a"], "--for", "hostb:data",
                          *extra, "--json", check=check)

    def spawn_create(self, *extra):
        return self.a.spawn([VSS, "--run-dir", self.a.run, "create", "shadow",
                             "--for", self.mnt["a"], "--for", "hostb:data"] + list(extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_log(d, text, timeout=15):
    assert wait_for(lambda: text in d.log(), timeout), d.log()[-3000:]


def exposed_files(d, shadow_id, where):
    d.vss("expose", shadow_id, where)
    try:
        return {f for f in os.listdir(where) if f.startswith("f")}
    finally:
        d.vss("unexpose", where)


def test_one_window_across_hosts(daemon_factory):
    """A writer writes file i to A, then to B: a set never holds B's file i
    without A's (every host frozen before any commits, all committed
    before any thaws).  B's writer takes part; the members are listed on
    both hosts; deleting the set on A deletes B's member."""
    h = Hosts(daemon_factory)
    log = os.path.join(h.b.root, "events")
    start_writer(h.b, "w", log)
    w = h.a.spawn([sys.executable, "-c", PAIR_WRITER, h.mnt["a"], h.mnt["b"]])
    time.sleep(0.3)
    sets = [json.loads(h.create().stdout) for _ in range(4)]
    w.kill()
    w.wait()
    for k, s in enumerate(sets):
        ids = {sh["target"]: sh for sh in s["shadows"]}
        assert [sh["target"] for sh in s["shadows"]] == [h.mnt["a"], "hostb:data"]
        assert ids["hostb:data"]["host"] == "hostb"
        fa = exposed_files(h.a, ids[h.mnt["a"]]["id"], os.path.join(h.a.root, "e%d" % k))
        fb = exposed_files(h.b, ids["hostb:data"]["id"], os.path.join(h.b.root, "e%d" % k))
        assert fa, "the writer had written nothing by this set"
        assert fb <= fa, sorted(fb - fa)[:5]
    # B's writer went through the set's events, in order.
    got = [e[1] for e in events(log) if e[0] == "w"]
    assert got == ["prepare_snapshot", "freeze", "thaw", "post_snapshot"] * 4, got
    # A lists B's members with their host, B its own with its coordinator.
    s = sets[0]
    remote = [sh for sh in h.a.shadows("--set", s["set"]) if sh["host"]]
    assert [(sh["host"], sh["id"], sh["state"]) for sh in remote] == \
        [("hostb", s["shadows"][1]["id"], "remote")]
    assert "hostb:data" in h.a.vss("list", "shadows").stdout
    mine = h.b.shadows("--set", s["set"])
    assert [(sh["id"], sh["coordinator"]) for sh in mine] == \
        [(s["shadows"][1]["id"], "hosta")]
    # Deleting the set on A deletes B's member too.
    r = h.a.vss("delete", "shadows", "--set", s["set"])
    assert "Deleted 2 shadow copies" in r.stdout
    assert h.b.shadows("--set", s["set"]) == []
    assert len(h.b.shadows()) == 3
    h.a.vss("delete", "shadows", "--all")
    assert h.a.shadows() == [] and h.b.shadows() == []
    # A set that is not persistent goes with the coordinator's stop, on
    # every host; a persistent one stays, listed on both.
    h.create()
    kept = json.loads(h.create("--persistent").stdout)
    h.a.restart()
    assert sorted(sh["id"] for sh in h.a.shadows()) == sorted(sh["id"] for sh in kept["shadows"])
    assert [sh["id"] for sh in h.b.shadows()] == [kept["shadows"][1]["id"]]


def test_a_peer_out_of_reach_keeps_its_member_listed(daemon_factory):
    h = Hosts(daemon_factory)
    s = json.loads(h.create("--persistent").stdout)
    bid = s["shadows"][1]["id"]
    h.b.stop()
    r = h.a.vss("delete", "shadows", "--set", s["set"], check=False)
    assert r.returncode == 1, r.stderr
    assert "Deleted 1 shadow copy" in r.stdout
    assert "shadow %s on host hostb could not be deleted" % bid in r.stderr
    assert "stays listed" in r.stderr
    assert [sh["id"] for sh in h.a.shadows()] == [bid]
    # Still recorded after a restart of A; deleted once B is back.
    h.a.restart()
    assert [sh["id"] for sh in h.a.shadows()] == [bid]
    h.b.start()
    assert [sh["id"] for sh in h.b.shadows()] == [bid]
    h.a.vss("delete", "shadows", "--shadow", bid[:8])
    assert h.a.shadows() == [] and h.b.shadows() == []


def test_a_backup_across_hosts(daemon_factory):
    """A requester's backup whose set spans hosts: its other hosts' members
    are in progress until backup.complete, and backup.abort or the
    requester going away deletes them there too."""
    h = Hosts(daemon_factory)

    def begin(c):
        assert c.call("backup.begin")["ok"] and c.call("backup.prepare")["ok"]
        r = c.call("shadow.create", targets=[h.mnt["a"], "hostb:data"])
        assert r["ok"], r
        assert [sh["state"] for sh in h.a.shadows() if sh["host"]] == ["in-progress"]
        assert len(h.b.shadows()) == 1

    c = Client(h.a)
    begin(c)
    assert c.call("backup.abort")["ok"]
    assert h.a.shadows() == [] and h.b.shadows() == []
    begin(c)
    c.close()
    assert wait_for(lambda: h.a.shadows() == [] and h.b.shadows() == [])
    c = Client(h.a)
    begin(c)
    assert c.call("backup.complete")["ok"]
    c.close()
    assert [sh["state"] for sh in h.a.shadows() if sh["host"]] == ["remote"]
    assert len(h.b.shadows()) == 1


def test_one_peer_failing_aborts_the_others(daemon_factory):
    """Two peers: C refuses (no such volume) while B is prepared and waits
    for the word to freeze: B is told to abort, and nothing is left
    anywhere; then a set over all three hosts' targets but C's works."""
    h = Hosts(daemon_factory)
    c = daemon_factory("c", args=["--host-name", "hostc"])
    with open(h.peers, "a") as f:
        f.write("hostc %s\n" % os.path.join(c.run, "vssd.sock"))
    r = h.a.vss("create", "shadow", "--for", h.mnt["a"], "--for", "hostb:data",
                "--for", "hostc:nothing", check=False)
    assert r.returncode == 1 and "host hostc: no volume named" in r.stderr, r.stderr
    wait_log(h.b, "the coordinator (hosta) aborted the set")
    assert h.a.shadows() == [] and h.b.shadows() == [] and c.shadows() == []
    assert write_returns(os.path.join(h.mnt["b"], "after"), 3), "B still frozen"
    s = json.loads(h.create().stdout)
    assert len(s["shadows"]) == 2 and len(h.b.shadows()) == 1


def test_peer_killed_inside_the_set(daemon_factory):
    """B dies while frozen: A's set fails at once, A is thawed, B's
    guardian thaws B, nothing is listed on either host."""
    h = Hosts(daemon_factory, b_env={"VSS_TEST_FREEZE_HOLD_MS": "4000"})
    c = h.spawn_create()
    wait_log(h.b, "holding the freeze")
    assert not write_returns(os.path.join(h.mnt["b"], "during"), 0.3), "B not frozen"
    t0 = time.time()
    h.b.kill9()
    out, errs = c.communicate(timeout=10)
    assert c.returncode == 1, errs
    assert "hostb" in errs and "closed the connection" in errs, errs
    assert time.time() - t0 < 3
    assert write_returns(os.path.join(h.mnt["a"], "after"), 3), "A still frozen"
    assert write_returns(os.path.join(h.mnt["b"], "after"), 5), "B still frozen"
    assert h.a.shadows() == []
    h.b.start()
    assert h.b.shadows() == []


def test_peer_that_never_answers(daemon_factory):
    """B stopped while frozen: A gives up at its freeze bound and thaws; B's
    guardian thaws B at B's bound; once B runs again it aborts its part:
    nothing is listed anywhere."""
    h = Hosts(daemon_factory, a_env={"VSS_TEST_FREEZE_LIMIT_MS": "2500"},
              b_env={"VSS_TEST_FREEZE_HOLD_MS": "1500", "VSS_TEST_FREEZE_LIMIT_MS": "2500"})
    c = h.spawn_create()
    wait_log(h.b, "holding the freeze")
    h.b.proc.send_signal(signal.SIGSTOP)
    t0 = time.time()
    try:
        out, errs = c.communicate(timeout=15)
        took = time.time() - t0
        assert c.returncode == 1, errs
        assert "host hostb did not say it was frozen in time" in errs, errs
        assert took < 4, took
        assert write_returns(os.path.join(h.mnt["a"], "after"), 3), "A still frozen"
        assert h.a.shadows() == []
    finally:
        h.b.proc.send_signal(signal.SIGCONT)
    assert write_returns(os.path.join(h.mnt["b"], "after"), 5), "B still frozen"
    assert wait_for(lambda: "aborted" in h.b.log()), h.b.log()
    assert h.b.shadows() == []
    # Both take the next set as if nothing happened.
    s = json.loads(h.create().stdout)
    assert len(s["shadows"]) == 2 and len(h.b.shadows()) == 1


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_coordinator_gone_while_peer_frozen(daemon_factory, how):
    """A dies (or stops) while B is frozen waiting for its word: B thaws on
    its own, at once when A's connection closes, at its own freeze bound
    when A only goes silent, and keeps nothing."""
    # B's bound (4 s) leaves room, at a load of 20 on 2 cores, between A
    # saying it holds the freeze and the check that B is frozen (with 2 s
    # B had once thawed by then); A's hold (10 s) outlasts it.
    h = Hosts(daemon_factory, a_env={"VSS_TEST_FREEZE_HOLD_MS": "10000"},
              b_env={"VSS_TEST_FREEZE_LIMIT_MS": "4000"})
    c = h.spawn_create()
    wait_log(h.a, "holding the freeze")
    # B freezes on A's word, as A does: by now, or moments later (up to
    # ~1 s seen with the new settle; why that long is not measured).
    deadline = time.time() + 2.5
    while write_returns(os.path.join(h.mnt["b"], "during"), 0.3):
        assert time.time() < deadline, "B not frozen"
    t0 = time.time()
    if how == "kill":
        h.a.kill9()
    else:
        h.a.proc.send_signal(signal.SIGSTOP)
    try:
        assert write_returns(os.path.join(h.mnt["b"], "after"), 8), "B still frozen"
        took = time.time() - t0
        assert took < (2 if how == "kill" else 7), took
        wait_log(h.b, "aborted")
        assert ("went away" if how == "kill" else "did not say \"commit\" in time") \
            in h.b.log()
        assert wait_for(lambda: h.b.shadows() == [])
    finally:
        if how == "stop":
            h.a.proc.send_signal(signal.SIGCONT)
    c.communicate(timeout=20)
    assert c.returncode != 0
    if how == "kill":
        h.a.start()
    assert h.a.shadows() == []
    assert write_returns(os.path.join(h.mnt["a"], "after"), 5), "A still frozen"


def test_only_root_takes_sets_with_other_hosts(daemon_factory, workdir):
    import grp
    try:
        operators = grp.getgrnam("users").gr_gid
    except KeyError:
        pytest.skip("no group 'users' to stand for the operator group")
    h = Hosts(daemon_factory, a_args=["--operator-group", "users"])
    for p in (workdir, h.a.root, h.b.root):
        os.chmod(p, 0o755)
    r = h.a.vss("create", "shadow", "--for", "hostb:data", user=NOBODY, groups=[operators],
                check=False)
    assert r.returncode == 1
    assert "only root may take a set with another host's targets" in r.stderr, r.stderr
    # A host the peers file does not name, and this host's own name.
    r = h.a.vss("create", "shadow", "--for", "nohost:data", check=False)
    assert r.returncode == 1 and "host nohost is not in the peers file" in r.stderr
    r = h.a.vss("create", "shadow", "--for", "hosta:data", check=False)
    assert r.returncode == 1 and "names this host" in r.stderr
    # What the peer refuses, it says; A says which host.
    r = h.a.vss("create", "shadow", "--for", h.mnt["a"], "--for", "hostb:nothing",
                check=False)
    assert r.returncode == 1 and "host hostb: no volume named \"nothing\"" in r.stderr, \
        r.stderr
    assert write_returns(os.path.join(h.mnt["a"], "after"), 3), "A still frozen"
    # vss backup create reads shadows here: this host's targets only; vss
    # exec takes another host's only for root.
    r = h.a.vss("backup", "create", "--to", os.path.join(h.a.root, "repo"), "--for",
                "hostb:data", check=False)
    assert r.returncode == 2 and "another host's target" in r.stderr, r.stderr
    r = h.a.vss("exec", "--for", "hostb:data", "--", "true", user=NOBODY,
                groups=[operators], check=False)
    assert r.returncode == 1, r.stderr
    assert "only root may take a set with another host's targets" in r.stderr, r.stderr
    # A peer request from anyone but root, straight to B's socket.
    probe = r"""
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
b = json.dumps({"version": 1, "id": 1, "op": "peer.set", "args": {
    "set": "0" * 8 + "-0000-4000-8000-" + "0" * 12, "coordinator": "x",
    "targets": ["data"]}}).encode()
s.sendall(struct.pack(">I", len(b)) + b)
n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
print(s.recv(n, socket.MSG_WAITALL).decode())
"""
    r = subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                        "--clear-groups", sys.executable, "-c", probe,
                        os.path.join(h.b.run, "vssd.sock")],
                       capture_output=True, text=True, timeout=10)
    reply = json.loads(r.stdout)
    assert reply["error"]["code"] == "EACCES", reply
    assert "peer requests are taken only from root" in reply["error"]["message"]
    assert h.a.shadows() == [] and h.b.shadows() == []
    assert "coordinated by host x," not in h.b.log()


def step(name):
    return {"version": 1, "step": name}


def liar_peer(path, script, final):
    """A peer on @path that answers as @script says: (what it waits for, an
    op or a step; what it sends back).  The set ID of peer.set is copied into
    @final's result.  Returns the thread and what it received, in order
    (None: the connection closed)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    got = []

    def run():
        try:
            c, _ = srv.accept()
        finally:
            srv.close()
        c.settimeout(20)
        try:
            for expect, send in script + [(None, None)] * 4:
                msg = recv_frame(c)
                got.append(None if msg is None else (msg.get("op") or msg.get("step")))
                if msg is None or expect is None or got[-1] != expect:
                    if msg is None:
                        return
                    continue
                if msg.get("op") == "peer.set":
                    final["result"]["set"] = msg["args"]["set"]
                c.sendall(frame(send))
        except OSError:
            pass
        finally:
            c.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, got


@pytest.mark.parametrize("bad", ["path-as-id", "other-target", "early-reply", "huge"])
def test_a_peer_that_lies_fails_the_set(daemon_factory, bad):
    """What a peer sends is checked: an ID that is no ID, a member of
    another target, a reply before the freeze, a message over the limit:
    the set fails, A is thawed, lists nothing and completes nothing."""
    a = daemon_factory("a", start=False, args=["--host-name", "hosta", "--peers", None,
                                                 "--peer-timeout", "3"])
    peers = os.path.join(a.root, "peers.conf")
    a.extra_args[a.extra_args.index(None)] = peers
    sock = os.path.join(a.root, "liar.sock")
    with open(peers, "w") as f:
        f.write("liar %s\n" % sock)
    a.start()
    mnt = os.path.join(a.root, "mnt")
    a.create_volume("data", "96M")
    a.vss("volume", "mount", "data", mnt, "--mkfs", "ext4")
    member = {"id": "0b8f0d5e-8c2e-4a51-9d0e-1f2a3b4c5d6e", "target": "data",
              "volume": "data", "device": "/dev/x", "provider": "vss-cow"}
    if bad == "path-as-id":
        member["id"] = "../../../etc/passwd"
    elif bad == "other-target":
        member["target"] = "/etc"
    final = {"version": 1, "id": 1, "ok": True, "result": {"set": None, "shadows": [member]}}
    script = [("peer.set", step("prepared")), ("freeze", step("frozen")),
              ("commit", step("committed")), ("thaw", final)]
    if bad == "early-reply":
        script = [("peer.set", step("prepared")), ("freeze", final)]
    elif bad == "huge":
        script = [("peer.set", step("prepared")),
                  ("freeze", {"version": 1, "step": "frozen", "pad": "x" * (300 << 10)})]
    t, got = liar_peer(sock, script, final)
    r = a.vss("create", "shadow", "--for", mnt, "--for", "liar:data", check=False, timeout=30)
    assert r.returncode == 1, r.stderr
    assert "host liar" in r.stderr, r.stderr
    t.join(10)
    # Told to abort, or cut off (the huge message: while it was being sent).
    assert got and got[-1] in ((None, "abort", "freeze") if bad == "huge"
                               else (None, "abort")), got
    assert "set.complete" not in got, got
    assert a.shadows() == []
    assert write_returns(os.path.join(mnt, "after"), 3), "A still frozen"


def nothing_exposed(d):
    where = os.path.join(d.run, "exec")
    return where not in open("/proc/self/mounts").read() and \
        (not os.path.isdir(where) or os.listdir(where) == [])


def exec_across(h, script, *extra, check=False):
    return h.a.vss("exec", "--for", h.mnt["a"], "--for", "hostb:data", *extra, "--",
                   "sh", "-c", script, check=check, timeout=60)


def test_exec_across_hosts(daemon_factory):
    """vss exec with another host's target: one backup on both hosts, each
    host's writers through every event to backup-complete; COMMAND reads
    this host's shadow where it is mounted and the other host's as its
    device there (here the same machine); nothing stays on either host."""
    h = Hosts(daemon_factory)
    logs = {n: os.path.join(d.root, "events") for n, d in (("a", h.a), ("b", h.b))}
    start_writer(h.a, "wa", logs["a"])
    start_writer(h.b, "wb", logs["b"])
    for n in "ab":
        with open(os.path.join(h.mnt[n], n + ".txt"), "w") as f:
            f.write("before %s\n" % n)
    out = os.path.join(h.a.root, "out")
    os.mkdir(out)
    # COMMAND changes B's live file first: the device must still read the shadow.
    script = ('set -e; echo after > %s/b.txt; sync; env | grep ^VSS_ | sort > %s/env; '
              'cat "$VSS_SHADOW_TARGET_1/a.txt" > %s/a; '
              'debugfs -R "cat /b.txt" "$VSS_SHADOW_DEVICE_2" > %s/b 2>/dev/null; '
              'cp %s %s/events-b' % (h.mnt["b"], out, out, out, logs["b"], out))
    r = exec_across(h, script)
    assert r.returncode == 0, r.stderr
    env = dict(l.split("=", 1) for l in open(os.path.join(out, "env")).read().splitlines())
    assert env["VSS_SHADOW_HOST_2"] == "hostb" and "VSS_SHADOW_HOST_1" not in env, env
    assert env["VSS_ORIGIN_PATH_2"] == "hostb:data" and env["VSS_SHADOW_PATH_2"] == ""
    assert env["VSS_SHADOW_TARGET_2"] == env["VSS_SHADOW_DEVICE_2"]
    assert env["VSS_SHADOW_DEVICE_2"] == os.path.join(h.b.run, "dev", "shadows",
                                                      env["VSS_SHADOW_ID_2"])
    assert open(os.path.join(out, "a")).read() == "before a\n"
    assert open(os.path.join(out, "b")).read() == "before b\n"
    seq = ["identify", "prepare_backup", "prepare_snapshot", "freeze", "thaw",
           "post_snapshot"]
    # B's writer had been through the snapshot's events when COMMAND ran, and
    # got backup-complete after it.
    assert [e[1] for e in events(os.path.join(out, "events-b"))] == seq
    for n in "ab":
        got = events(logs[n])
        assert [e[1] for e in got] == seq + ["backup_complete"], (n, got)
        assert got[-1][2:] == ["succeeded=1"], got
    assert h.a.shadows() == [] and h.b.shadows() == []
    # COMMAND failing: abort on both hosts, nothing left.
    r = exec_across(h, "exit 3")
    assert r.returncode == 3, r.stderr
    for n in "ab":
        got = [e[1] for e in events(logs[n])]
        assert got[len(seq) + 1:] == seq + ["abort"], (n, got)
    assert h.a.shadows() == [] and h.b.shadows() == []
    assert nothing_exposed(h.a)
    # --in-place shows shadows at their paths here: this host's only.
    r = exec_across(h, "true", "--in-place")
    assert r.returncode == 2 and "another host's target" in r.stderr, r.stderr


def test_exec_across_hosts_prepares_every_host_before_any_freeze(daemon_factory):
    """Every host's writers are identified and prepared for backup before
    any host's writers freeze: B's writer takes 3 s over identify and
    prepare_backup (1.5 s each), longer than A's freeze window of 2 s, and
    the backup goes through; the one log both writers share shows every
    identify and prepare_backup before the first freeze."""
    h = Hosts(daemon_factory)
    log = os.path.join(h.a.root, "events")
    start_writer(h.a, "wa", log)
    start_writer(h.b, "wb", log, "--slow-at", "identify,prepare_backup", "--slow-ms", "1500")
    r = exec_across(h, "true", "--freeze-timeout", "2")
    assert r.returncode == 0, r.stderr
    got = [tuple(e[:2]) for e in events(log)]
    first = [e[1] for e in got].index("freeze")
    for w in ("wa", "wb"):
        assert (w, "identify") in got[:first] and (w, "prepare_backup") in got[:first], got
        assert [e[1] for e in got if e[0] == w] == [
            "identify", "prepare_backup", "prepare_snapshot", "freeze", "thaw",
            "post_snapshot", "backup_complete"], got
    assert h.a.shadows() == [] and h.b.shadows() == []


def test_exec_across_hosts_peer_refuses_before_any_freeze(daemon_factory):
    """B's backup slot is held by another requester: B refuses backup.begin
    (after half A's peer timeout), and the backup fails naming B with
    nothing frozen anywhere: A's writer got identify and prepare_backup,
    then abort, never prepare_snapshot or freeze; B's writer got nothing."""
    h = Hosts(daemon_factory)
    log = os.path.join(h.a.root, "events")
    start_writer(h.a, "wa", log)
    start_writer(h.b, "wb", log)
    other = Client(h.b)
    assert other.call("backup.begin", no_writers=True)["ok"]
    r = exec_across(h, "true")
    other.close()
    assert r.returncode == 1 and "host hostb" in r.stderr, r.stderr
    got = [tuple(e[:2]) for e in events(log)]
    assert got == [("wa", "identify"), ("wa", "prepare_backup"), ("wa", "abort")], got
    assert h.a.shadows() == [] and h.b.shadows() == []


def exec_spawn(h, script):
    return h.a.spawn([VSS, "--run-dir", h.a.run, "exec", "--for", h.mnt["a"], "--for",
                      "hostb:data", "--", "sh", "-c", script],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# COMMAND for a lost host: says it runs, sleeps 30 s unless SIGTERM comes,
# says how it ended; its lines go to the writer's log, so that one file
# orders them with A's writer's events.
LONG_COMMAND = ("trap 'echo command term >> {log}; exit 143' TERM; "
                "echo command running >> {log}; sleep 30 & wait; echo command end >> {log}")


def exec_while_host_lost(daemon_factory, lose):
    """Hosts, A's writer, and vss exec whose COMMAND runs while lose(h)
    loses B: (h, its writer's log, vss exec, when B was lost)."""
    h = Hosts(daemon_factory)
    log = os.path.join(h.a.root, "events")
    start_writer(h.a, "wa", log)
    p = exec_spawn(h, LONG_COMMAND.format(log=log))
    assert wait_for(lambda: "running" in [e[1] for e in events(log)], 20), events(log)
    t0 = time.time()
    lose(h)
    return h, log, p, t0


def lost_host_aborts(h, log, p, t0, why):
    """Checks what follows a host lost while COMMAND runs."""
    out, err = p.communicate(timeout=30)
    took = time.time() - t0
    got = [e[1] for e in events(log)]
    # A's writer got abort while COMMAND still ran; then COMMAND's group got
    # SIGTERM, and vss exec failed naming the host.
    assert got[-4:] == ["post_snapshot", "running", "abort", "term"], events(log)
    assert "end" not in got, events(log)
    assert p.returncode == 1, err
    assert "host hostb was lost while the backup held its shadows" in err, err
    assert why in err and "SIGTERM" in err, err
    assert took < 12, took
    assert h.a.shadows() == []
    assert nothing_exposed(h.a)


def test_exec_across_hosts_peer_killed(daemon_factory):
    """B's vssd killed while COMMAND runs: A finds it at once (B's connection
    closed), aborts the backup on this host while COMMAND still runs (A's
    writer gets abort, the set is deleted, B's member forgotten), vss exec
    sends COMMAND's process group SIGTERM and fails naming B; B, started
    again, lists nothing."""
    def kill(h):
        h.b.proc.kill()
        h.b.proc.wait()

    h, log, p, t0 = exec_while_host_lost(daemon_factory, kill)
    lost_host_aborts(h, log, p, t0, "it closed the connection")
    h.b.start()
    assert h.b.shadows() == []
    # A takes the next backup with B as if nothing happened.
    assert exec_across(h, "true").returncode == 0


def test_exec_across_three_hosts_one_lost(daemon_factory):
    """Hosts A, B and C; B's vssd killed while COMMAND runs: the other peer's
    writer (C's) and A's get abort while COMMAND still runs, before
    COMMAND's SIGTERM; C keeps nothing."""
    h = Hosts(daemon_factory)
    c = daemon_factory("c", args=["--host-name", "hostc"])
    with open(h.peers, "a") as f:
        f.write("hostc %s\n" % os.path.join(c.run, "vssd.sock"))
    c.create_volume("data", "96M")
    c.vss("volume", "mount", "data", os.path.join(c.root, "mnt"), "--mkfs", "ext4")
    log = os.path.join(h.a.root, "events")
    start_writer(h.a, "wa", log)
    start_writer(c, "wc", log)
    p = h.a.spawn([VSS, "--run-dir", h.a.run, "exec", "--for", h.mnt["a"], "--for",
                   "hostb:data", "--for", "hostc:data", "--", "sh", "-c",
                   LONG_COMMAND.format(log=log)],
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: ("command", "running") in [tuple(e[:2]) for e in events(log)],
                    20), events(log)
    h.b.proc.kill()
    h.b.proc.wait()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1 and "host hostb was lost" in err, err
    got = [tuple(e[:2]) for e in events(log)]
    after = got[got.index(("command", "running")) + 1:]
    assert sorted(after[:2]) == [("wa", "abort"), ("wc", "abort")], got
    assert after[2:] == [("command", "term")], got
    assert c.shadows() == [] and h.a.shadows() == []


def test_exec_across_hosts_peer_silent(daemon_factory):
    """B's vssd stopped while COMMAND runs: its connection stays open, but
    it misses the backup.status that vss exec's watch passes on (every
    second), so within the peer timeout (4 s here) the backup is aborted
    as for a host that died; B's own bound frees what it held once it runs
    again."""
    h, log, p, t0 = exec_while_host_lost(
        daemon_factory, lambda h: os.kill(h.b.proc.pid, signal.SIGSTOP))
    try:
        lost_host_aborts(h, log, p, t0, "did not answer in time")
    finally:
        os.kill(h.b.proc.pid, signal.SIGCONT)
    assert wait_for(lambda: h.b.shadows() == [], 10), h.b.shadows()


def test_backup_across_hosts_lease(daemon_factory):
    """A requester's backup across hosts lives as long as its lease here:
    backup.status is passed on to the peer's backup (whose lease is the
    requester's), so a requester that keeps asking completes it on both
    hosts; one that goes silent past its lease is aborted on both."""
    h = Hosts(daemon_factory)
    log = os.path.join(h.b.root, "events")
    start_writer(h.b, "wb", log)
    c = Client(h.a)

    def begin():
        assert c.call("backup.begin", lease_ms=1000)["ok"]
        assert c.call("backup.prepare")["ok"]
        r = c.call("shadow.create", targets=[h.mnt["a"], "hostb:data"])
        assert r["ok"], r
        assert len(h.b.shadows()) == 1

    begin()
    for _ in range(5):          # 2.5 s: more than twice the lease
        time.sleep(0.5)
        r = c.call("backup.status")
        assert r["ok"] and r["result"]["active"], r
    r = c.call("backup.complete")
    assert r["ok"], r
    assert [e[1] for e in events(log)][-1] == "backup_complete", events(log)
    assert len(h.b.shadows()) == 1
    assert c.call("shadow.delete", set=r["result"]["set"])["ok"]
    assert h.a.shadows() == [] and h.b.shadows() == []
    # Silent past the lease: the reaper aborts it here, and so there.
    begin()
    assert wait_for(lambda: h.b.shadows() == [] and h.a.shadows() == [], 10)
    assert [e[1] for e in events(log)][-1] == "abort", events(log)
    r = c.call("backup.status")
    assert r["ok"] and not r["result"]["active"] and r["result"]["ended"], r
    c.close()
