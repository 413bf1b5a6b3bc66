"""RBD volumes against a real single-node Ceph cluster (ceph_cluster.py),
started once for the file: volumes on RBD images, shadows as RBD snapshots,
sets as one group snapshot, restarts, foreign snapshots and orphans."""
import json
import os
import time

import pytest

from ceph_cluster import CephCluster, missing_binaries

POOL = "vsstest"


@pytest.fixture(scope="module")
def ceph():
    missing = missing_binaries()
    if missing:
        pytest.skip("a Ceph cluster needs %s (Debian: ceph-mon ceph-osd ceph-common)"
                    % ", ".join(missing))
    if os.geteuid() != 0:
        pytest.skip("system tests need root")
    c = CephCluster()
    try:
        c.start()
        c.create_pool(POOL)
        yield c
    finally:
        c.stop()


def test_cluster_serves_images(ceph):
    data = os.urandom(1 << 20)
    src = os.path.join(ceph.root, "probe.in")
    out = os.path.join(ceph.root, "probe.out")
    with open(src, "wb") as f:
        f.write(data)
    ceph.rbd("import", src, POOL + "/probe")
    ceph.rbd("export", POOL + "/probe", out)
    with open(out, "rb") as f:
        assert f.read() == data
    ceph.rbd("rm", POOL + "/probe")


def test_fixture_teardown_kills_every_daemon():
    if missing_binaries() or os.geteuid() != 0:
        pytest.skip("needs the Ceph binaries and root")
    c = CephCluster()
    root = c.root
    try:
        c.start()
        pids = [p.pid for p in c.procs]
        assert len(pids) == 2
    finally:
        c.stop()
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid)
    assert not os.path.exists(root)


# ---- vssd on the cluster ----

def image_snaps(ceph, image):
    return json.loads(ceph.rbd("snap", "ls", "--all", "--format", "json",
                               POOL + "/" + image).stdout)


@pytest.fixture
def rvssd(ceph, daemon_factory):
    return daemon_factory(args=["--ceph-conf", ceph.conf])


def read_dev(path, size):
    with open(path, "rb") as f:
        return f.read(size)


def test_raw_shadow_reads_old_bytes_exactly(ceph, rvssd):
    v = rvssd.vss("volume", "create", "raw", "--rbd", POOL + "/raw", "--size", "16M")
    v = rvssd.volume("raw")
    assert v["backing"] == "rbd:%s/raw" % POOL and v["size"] == 16 << 20
    old = os.urandom(16 << 20)
    dev = rvssd.device("raw")
    with open(dev, "r+b") as f:
        f.write(old)
        f.flush()
        os.fsync(f.fileno())
    sh = rvssd.shadow("raw")["shadows"][0]
    with open(dev, "r+b") as f:
        f.seek(4096)
        f.write(b"\xa5" * (1 << 20))
        os.fsync(f.fileno())
    assert read_dev(sh["device"], 16 << 20) == old
    # The volume reads the new bytes, from the cluster itself too.
    out = os.path.join(rvssd.root, "export")
    ceph.rbd("export", POOL + "/raw", out)
    with open(out, "rb") as f:
        now = f.read()
    assert now[4096:4096 + (1 << 20)] == b"\xa5" * (1 << 20)
    assert now[:4096] == old[:4096]
    # Changed blocks come from the cluster (rbd_diff_iterate2): the 1 MiB
    # written, not the 16 MiB volume; and old bytes with the changed extents
    # laid over them are the new shadow exactly.
    sh2 = rvssd.shadow("raw")["shadows"][0]
    d = rvssd.json("diff", sh["id"], sh2["id"])
    assert d["volume"] == "raw" and d["size"] == 16 << 20
    assert d["changed_bytes"] < 4 << 20, d
    assert any(o <= 4096 and o + n >= 4096 + (1 << 20) for o, n in d["extents"]), d
    new = bytearray(old)
    for o, n in d["extents"]:
        with open(sh2["device"], "rb") as f:
            f.seek(o)
            new[o:o + n] = f.read(n)
    assert bytes(new) == read_dev(sh2["device"], 16 << 20) == now
    # Against now: nothing written since the second shadow.
    assert rvssd.json("diff", sh2["id"])["changed_bytes"] == 0


def test_ext4_on_rbd_shadow_keeps_the_file(ceph, rvssd):
    rvssd.vss("volume", "create", "fs", "--rbd", POOL + "/fs", "--size", "64M")
    mnt = os.path.join(rvssd.root, "mnt")
    rvssd.vss("volume", "mount", "fs", mnt, "--mkfs", "ext4")
    data = os.urandom(3 << 20)
    with open(os.path.join(mnt, "f"), "wb") as f:
        f.write(data)
    sh = rvssd.shadow(mnt)["shadows"][0]
    with open(os.path.join(mnt, "f"), "wb") as f:
        f.write(b"new")
    exp = os.path.join(rvssd.root, "exp")
    rvssd.vss("expose", sh["id"], exp)
    with open(os.path.join(exp, "f"), "rb") as f:
        assert f.read() == data
    rvssd.vss("unexpose", exp)
    # A restart mounts the volume again, on its image.
    persistent = rvssd.shadow(mnt, persistent=True)["shadows"][0]
    rvssd.restart()
    assert rvssd.volume("fs")["mount"] == mnt
    with open(os.path.join(mnt, "f"), "rb") as f:
        assert f.read() == b"new"
    assert sorted(s["id"] for s in rvssd.shadows()) == sorted([persistent["id"]])
    # Deleting the volume deletes its shadows' snapshots, never the image.
    r = rvssd.vss("volume", "delete", "fs", check=False)
    assert r.returncode != 0 and "mounted" in r.stderr
    rvssd.vss("volume", "delete", "fs", "--force")
    assert image_snaps(ceph, "fs") == []
    assert "fs" in ceph.rbd("ls", POOL).stdout.split()
    assert rvssd.json("volume", "list")["volumes"] == []


def test_set_over_two_rbd_volumes_is_one_group_snapshot(ceph, rvssd):
    for name in ("ga", "gb"):
        rvssd.vss("volume", "create", name, "--rbd", POOL + "/" + name, "--size", "8M")
    s = rvssd.shadow("ga", "gb", persistent=True)
    assert len(s["shadows"]) == 2
    snaps = {n: image_snaps(ceph, n) for n in ("ga", "gb")}
    for n, ss in snaps.items():
        assert len(ss) == 1, ss
        assert ss[0]["namespace"]["type"] == "group", ss
    ga, gb = snaps["ga"][0]["namespace"], snaps["gb"][0]["namespace"]
    # One group snapshot: the same group and group snapshot on both images.
    assert (ga["group"], ga["group snap"]) == (gb["group"], gb["group snap"])
    assert ga["group snap"] == "vss-" + s["set"]
    # Ceph 16 cannot diff from a group snapshot: every block counts.
    d = rvssd.json("diff", s["shadows"][0]["id"])
    assert d["changed_bytes"] == 8 << 20
    groups = json.loads(ceph.rbd("group", "snap", "ls", "--format", "json",
                                 POOL + "/" + ga["group"].split("/")[-1]).stdout)
    assert [g["snapshot"] for g in groups] == ["vss-" + s["set"]]
    # The images left the group: the next set can take them again.
    s2 = rvssd.shadow("ga", "gb")
    assert len(image_snaps(ceph, "ga")) == 2
    rvssd.vss("delete", "shadows", "--set", s2["set"])
    rvssd.vss("delete", "shadows", "--set", s["set"])
    assert image_snaps(ceph, "ga") == [] and image_snaps(ceph, "gb") == []
    assert "vss." not in ceph.rbd("group", "ls", POOL).stdout


def test_restart_finds_shadows_orphans_go_foreign_stay(ceph, rvssd):
    rvssd.vss("volume", "create", "rs", "--rbd", POOL + "/rs", "--size", "8M")
    dev = rvssd.device("rs")
    old = os.urandom(1 << 20)
    with open(dev, "r+b") as f:
        f.write(old)
        os.fsync(f.fileno())
    ceph.rbd("snap", "create", POOL + "/rs@foreign")
    ceph.rbd("snap", "create", POOL + "/rs@vss-lookalike")
    # What a vssd killed between a set's instant and its end leaves: the
    # set's mark and its snapshot (here made by hand, as vssd names them).
    cut = "0123abcd-0000-4000-8000-00000000cafe"
    ceph.rbd("image-meta", "set", POOL + "/rs", "vss.set." + cut, POOL)
    keep = rvssd.shadow("rs", persistent=True)["shadows"][0]
    drop = rvssd.shadow("rs")["shadows"][0]
    with open(dev, "r+b") as f:
        f.write(b"\0" * (1 << 20))
        os.fsync(f.fileno())
    ceph.rbd("snap", "create", POOL + "/rs@vss-" + cut)
    names = lambda: sorted(s["name"] for s in image_snaps(ceph, "rs"))
    assert len(names()) == 5
    # The set cut short left the image in its group: any later set would
    # be refused it ("in another group") until the next start removes it.
    ceph.rbd("group", "create", POOL + "/vss." + cut)
    ceph.rbd("group", "image", "add", POOL + "/vss." + cut, POOL + "/rs")
    # Killed: the not-persistent shadow's snapshot stays behind, an orphan.
    rvssd.kill9()
    rvssd.start()
    ids = [s["id"] for s in rvssd.shadows()]
    assert ids == [keep["id"]]
    assert read_dev(os.path.join(rvssd.run, "dev", "shadows", keep["id"]), 1 << 20) == old
    left = names()
    assert "foreign" in left and "vss-lookalike" in left and len(left) == 3, left
    assert "orphan" in rvssd.log() and drop["id"] in rvssd.log()
    assert "a set cut short (%s)" % cut in rvssd.log()
    assert "vss." + cut not in ceph.rbd("group", "ls", POOL).stdout
    # A clean restart keeps it too; deleting it leaves the foreign ones.
    rvssd.restart()
    assert [s["id"] for s in rvssd.shadows()] == [keep["id"]]
    rvssd.vss("delete", "shadows", "--shadow", keep["id"])
    assert names() == ["foreign", "vss-lookalike"]
    meta = ceph.rbd("image-meta", "list", POOL + "/rs").stdout
    assert "vss." not in meta


@pytest.mark.parametrize("spec", ["nopool", "/img", "pool/", "-p/img", "p/.img",
                                  "p/im g", "p/a;touch x", "p/a/b", "p/" + "x" * 97,
                                  "p/$(id)"])
def test_hostile_image_names_are_refused(ceph, rvssd, spec):
    r = rvssd.vss("volume", "create", "bad", "--rbd", spec, "--size", "8M", check=False)
    assert r.returncode != 0 and "invalid RBD image" in r.stderr, r.stderr
    assert rvssd.json("volume", "list")["volumes"] == []


def test_image_backup_of_an_rbd_volume(ceph, rvssd):
    """Image backups read RBD shadows; a bookmark keeps the full's snapshot
    past its shadow, so the incremental reads only what the cluster says
    changed (rbd_diff_iterate2), and restores exactly."""
    size = 8 << 20
    rvssd.vss("volume", "create", "img", "--rbd", POOL + "/img", "--size", "8M")
    dev = rvssd.device("img")
    with open(dev, "r+b") as f:
        f.write(os.urandom(size))
        os.fsync(f.fileno())
    repo = os.path.join(rvssd.root, "repo")

    def backup(typ):
        out = rvssd.json("backup", "create", "--image", "--to", repo, "--for", "img",
                         "--type", typ, "--no-writers")
        return out["backups"][0]

    full = backup("full")
    assert rvssd.shadows() == []
    # Only the bookmark's snapshot is left of the full's set.
    assert full["type"] == "full" and len(image_snaps(ceph, "img")) == 1
    with open(dev, "r+b") as f:
        f.seek(1 << 20)
        f.write(b"\x77" * 4096)
        os.fsync(f.fileno())
    inc = backup("incremental")
    assert not inc.get("why_full"), inc
    assert inc["type"] == "incremental" and inc["bytes_read"] < 1 << 20, inc
    to = os.path.join(rvssd.root, "restored")
    with open(to, "wb") as f:
        f.truncate(size)
    rvssd.vss("restore", "--from", repo, inc["id"], "--to", to)
    assert read_dev(to, size) == read_dev(dev, size)
    # The repository keeps the bookmarks of its newest and newest full: two
    # snapshots at most, whatever the number of backups.
    backup("incremental")
    assert len(image_snaps(ceph, "img")) <= 2
    # A restart keeps them (not shadows: not orphans).
    rvssd.restart()
    assert len(image_snaps(ceph, "img")) <= 2
    assert not backup("incremental").get("why_full")


def test_snapshot_limit_is_a_clear_error(ceph, rvssd):
    rvssd.vss("volume", "create", "lim", "--rbd", POOL + "/lim", "--size", "8M")
    ceph.rbd("snap", "limit", "set", "--limit", "1", POOL + "/lim")
    taken = rvssd.shadow("lim")
    first = taken["shadows"][0]
    r = rvssd.vss("create", "shadow", "--for", "lim", check=False)
    assert r.returncode != 0 and "as many as its limit allows (rbd snap limit)" in r.stderr, r.stderr
    # Nothing of the failed set is left: one snapshot, and no group (a
    # single-volume set takes a snapshot of its own, named vss-SET).
    assert len(image_snaps(ceph, "lim")) == 1
    assert [s["id"] for s in rvssd.shadows()] == [first["id"]]
    assert [s["name"] for s in image_snaps(ceph, "lim")] == ["vss-" + taken["set"]]
    assert ceph.rbd("group", "ls", POOL).stdout.split() == []
    rvssd.vss("delete", "shadows", "--shadow", first["id"])
    assert image_snaps(ceph, "lim") == []


def test_snapshot_limit_in_a_group_set_leaves_nothing(ceph, rvssd):
    """A set over two RBD volumes, the second at its snapshot limit: the
    set fails naming that image, after the first was prepared (its group
    made, the image in it): no snapshot, no group, no mark is left, and the
    first volume's next set is taken as if nothing happened."""
    for name in ("la", "lb"):
        rvssd.vss("volume", "create", name, "--rbd", POOL + "/" + name, "--size", "8M")
    ceph.rbd("snap", "create", POOL + "/lb@foreign")
    ceph.rbd("snap", "limit", "set", "--limit", "1", POOL + "/lb")
    r = rvssd.vss("create", "shadow", "--for", "la", "--for", "lb", check=False)
    assert r.returncode != 0, r.stdout
    assert "RBD image %s/lb has 1 snapshots, as many as its limit allows" % POOL in r.stderr, \
        r.stderr
    assert rvssd.shadows() == []
    assert image_snaps(ceph, "la") == []
    assert [s["name"] for s in image_snaps(ceph, "lb")] == ["foreign"]
    assert ceph.rbd("group", "ls", POOL).stdout.split() == []
    for name in ("la", "lb"):
        assert "vss." not in ceph.rbd("image-meta", "list", POOL + "/" + name).stdout
    s = rvssd.shadow("la")
    assert [x["name"] for x in image_snaps(ceph, "la")] == ["vss-" + s["set"]]
    rvssd.vss("delete", "shadows", "--set", s["set"])
    for name in ("la", "lb"):
        rvssd.vss("volume", "delete", name)


# Appends record i (64 bytes) to FILE, fsyncs, then prints i: what it printed
# was acknowledged durable.
SEQ_WRITER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
i = 0
while True:
    os.write(fd, b"%063d\n" % i)
    os.fsync(fd)
    print(i, flush=True)
    i += 1
"""


def test_osd_stopped_under_a_mounted_writer(ceph, rvssd):
    """The OSD stopped (SIGSTOP: the memstore OSD keeps nothing across a
    kill) while ext4 on an RBD volume is written and fsynced: the writer
    waits, the log says which image waits and then that the cluster answers
    again; the writer goes on, and every record it had fsynced is in the
    image, read from the cluster itself (rbd export) once unmounted."""
    import signal
    import subprocess
    import sys
    import threading

    rvssd.vss("volume", "create", "osdf", "--rbd", POOL + "/osdf", "--size", "32M")
    mnt = os.path.join(rvssd.root, "mnt-osdf")
    rvssd.vss("volume", "mount", "osdf", mnt, "--mkfs", "ext4")
    w = rvssd.spawn([sys.executable, "-c", SEQ_WRITER, os.path.join(mnt, "log")],
                    stdout=subprocess.PIPE, text=True)
    acked = []
    reader = threading.Thread(target=lambda: [acked.append(int(l)) for l in w.stdout],
                              daemon=True)
    reader.start()
    stopped = False
    try:
        deadline = time.time() + 10
        while len(acked) < 20:
            assert time.time() < deadline and w.poll() is None, "the writer does not write"
            time.sleep(0.1)
        os.kill(ceph.osd.pid, signal.SIGSTOP)
        stopped = True
        time.sleep(1)
        during = len(acked)
        deadline = time.time() + 15
        while "has waited" not in rvssd.log():
            assert time.time() < deadline, rvssd.log()[-2000:]
            time.sleep(0.2)
        assert "RBD image %s/osdf: a " % POOL in rvssd.log(), rvssd.log()[-2000:]
        # Nothing was acknowledged while the OSD was stopped.
        assert len(acked) == during and w.poll() is None, (len(acked), during)
        os.kill(ceph.osd.pid, signal.SIGCONT)
        stopped = False
        deadline = time.time() + 20
        while len(acked) < during + 20:
            assert time.time() < deadline and w.poll() is None, rvssd.log()[-2000:]
            time.sleep(0.1)
        assert "RBD image %s/osdf: the cluster answers again" % POOL in rvssd.log()
    finally:
        if stopped:
            os.kill(ceph.osd.pid, signal.SIGCONT)
        w.kill()
        w.wait()
        reader.join(5)
    rvssd.vss("volume", "umount", "osdf")
    img = os.path.join(rvssd.root, "osdf.img")
    ceph.rbd("export", POOL + "/osdf", img)
    r = subprocess.run(["debugfs", "-R", "cat /log", img], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    on_disk = set(int(l) for l in r.stdout.split())
    missing = sorted(set(acked) - on_disk)
    assert acked and not missing, "acknowledged records lost: %s" % missing[:10]
    rvssd.vss("volume", "delete", "osdf")


def test_cluster_away_at_start_then_back(ceph, rvssd):
    """Last: it stops the monitor.  vssd starts without the cluster, serves
    its other volumes, lists the RBD one offline, and serves it once the
    cluster answers again."""
    rvssd.vss("volume", "create", "away", "--rbd", POOL + "/away", "--size", "8M")
    data = os.urandom(1 << 20)
    with open(rvssd.device("away"), "r+b") as f:
        f.write(data)
        os.fsync(f.fileno())
    rvssd.vss("volume", "create", "local", "--size", "8M")
    rvssd.stop()
    ceph.kill(ceph.mon)
    try:
        t = time.time()
        rvssd.start()
        assert time.time() - t < 10, "vssd waited for the cluster at start"
        # Retries (every 5 s, 3 s each) never hold up the control socket.
        for _ in range(8):
            t = time.time()
            rvssd.json("volume", "list")
            assert time.time() - t < 1.5
            time.sleep(1)
        vols = {v["name"]: v for v in rvssd.json("volume", "list")["volumes"]}
        assert vols["local"]["state"] == "online"
        assert vols["away"]["state"] == "offline" and vols["away"]["reason"], vols["away"]
        with open(rvssd.device("local"), "r+b") as f:
            f.write(b"x" * 4096)
    finally:
        ceph.start_mon()
    deadline = time.time() + 60
    while rvssd.volume("away")["state"] != "online":
        assert time.time() < deadline, rvssd.log()[-2000:]
        time.sleep(0.5)
    assert read_dev(rvssd.device("away"), 1 << 20) == data
    assert "answers again" in rvssd.log()


def test_set_across_hosts_is_one_rbd_group_snapshot(ceph, daemon_factory):
    """Two vssd ("hosts" A and B, as test_peers.py's) on one cluster, an RBD
    volume with ext4 on each and the pair writer across them: the set across
    hosts is one RBD group snapshot covering both images (A takes it with
    B's image, which B named with its ID; B records its member as that
    group snapshot's image snapshot); each host lists its member; the pair
    writer holds; deleting the set on A leaves no snapshot and no group."""
    import sys
    from test_fs import PAIR_WRITER
    from test_peers import exposed_files
    b = daemon_factory("b", args=["--ceph-conf", ceph.conf, "--host-name", "hostb"])
    a = daemon_factory("a", start=False, args=["--ceph-conf", ceph.conf, "--host-name",
                                               "hosta", "--peers", None])
    peers = os.path.join(a.root, "peers.conf")
    a.extra_args[a.extra_args.index(None)] = peers
    with open(peers, "w") as f:
        f.write("hostb %s\n" % os.path.join(b.run, "vssd.sock"))
    a.start()
    mnt = {}
    for n, d in (("a", a), ("b", b)):
        d.vss("volume", "create", "x" + n, "--rbd", POOL + "/x" + n, "--size", "64M")
        mnt[n] = os.path.join(d.root, "mnt")
        d.vss("volume", "mount", "x" + n, mnt[n], "--mkfs", "ext4")
    w = a.spawn([sys.executable, "-c", PAIR_WRITER, mnt["a"], mnt["b"]])
    try:
        time.sleep(0.5)
        s = json.loads(a.vss("create", "shadow", "--for", mnt["a"], "--for", "hostb:xb",
                             "--json").stdout)
    finally:
        w.kill()
        w.wait()
    group = "vss." + s["set"]
    gsnaps = json.loads(ceph.rbd("group", "snap", "ls", "--format", "json",
                                 POOL + "/" + group).stdout)
    assert [g["snapshot"] for g in gsnaps] == ["vss-" + s["set"]]
    for n in "ab":
        ss = image_snaps(ceph, "x" + n)
        assert len(ss) == 1 and ss[0]["namespace"]["type"] == "group", (n, ss)
        assert ss[0]["namespace"]["group snap"] == "vss-" + s["set"], ss
        assert ss[0]["namespace"]["group"].split("/")[-1] == group, ss
    ids = {sh["target"]: sh["id"] for sh in s["shadows"]}
    assert [sh["id"] for sh in b.shadows("--set", s["set"])] == [ids["hostb:xb"]]
    assert [sh["id"] for sh in a.shadows("--set", s["set"]) if not sh["host"]] == \
        [ids[mnt["a"]]]
    fa = exposed_files(a, ids[mnt["a"]], os.path.join(a.root, "e"))
    fb = exposed_files(b, ids["hostb:xb"], os.path.join(b.root, "e"))
    assert fa, "the writer had written nothing by the set"
    assert fb <= fa, sorted(fb - fa)[:5]
    # The images left the group: nothing of the set is left once deleted.
    a.vss("delete", "shadows", "--set", s["set"])
    assert image_snaps(ceph, "xa") == [] and image_snaps(ceph, "xb") == []
    assert "vss." not in ceph.rbd("group", "ls", POOL).stdout
    # The set's last member another host's, deleted after A restarted (A
    # no longer remembers where it made the group): the group goes too.
    s = json.loads(a.vss("create", "shadow", "--persistent", "--for", mnt["a"], "--for",
                         "hostb:xb", "--json").stdout)
    ids = {sh["target"]: sh["id"] for sh in s["shadows"]}
    a.vss("delete", "shadows", "--shadow", ids[mnt["a"]])
    assert ("vss." + s["set"]) in ceph.rbd("group", "ls", POOL).stdout.split()
    a.restart()
    a.vss("delete", "shadows", "--shadow", ids["hostb:xb"])
    assert image_snaps(ceph, "xa") == [] and image_snaps(ceph, "xb") == []
    assert "vss." not in ceph.rbd("group", "ls", POOL).stdout
    assert "RBD group %s/vss.%s of set %s removed after its last member" % (
        POOL, s["set"], s["set"]) in a.log()
    # One host's RBD volume and the other's built-in one: B is on the same
    # cluster but has no RBD member in this set; A's image alone is its
    # own snapshot, B's volume its own shadow; both go with the set.
    b.create_volume("bi", "32M")
    s = json.loads(a.vss("create", "shadow", "--for", mnt["a"], "--for", "hostb:bi",
                         "--json").stdout)
    assert [sh["provider"] for sh in s["shadows"]] == ["rbd", "vss-cow"], s
    assert [x["namespace"]["type"] for x in image_snaps(ceph, "xa")] == ["user"]
    a.vss("delete", "shadows", "--set", s["set"])
    assert image_snaps(ceph, "xa") == [] and b.shadows() == []
    # An image is in at most one group: B's in a group of its
    # administrator's fails the set before anyone freezes, naming it, and
    # leaves nothing.
    ceph.rbd("group", "create", POOL + "/mine")
    ceph.rbd("group", "image", "add", POOL + "/mine", POOL + "/xb")
    r = a.vss("create", "shadow", "--for", mnt["a"], "--for", "hostb:xb", check=False)
    assert r.returncode == 1 and "xb" in r.stderr and "another group" in r.stderr, r.stderr
    assert a.shadows() == [] and b.shadows() == []
    assert image_snaps(ceph, "xa") == [] and image_snaps(ceph, "xb") == []
    assert ceph.rbd("group", "ls", POOL).stdout.split() == ["mine"]
    ceph.rbd("group", "rm", POOL + "/mine")
    for n, d in (("a", a), ("b", b)):
        d.vss("volume", "delete", "x" + n, "--force")
