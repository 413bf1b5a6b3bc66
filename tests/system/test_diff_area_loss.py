"""A lost, damaged or misplaced diff area never takes its volume with it
(doc/service.md, "When a diff area is lost"): missing, corrupt or
unwritable at start, deleted or replaced under a running vssd, on a tmpfs;
a failure nothing could record is still caught at the next start; nothing
vss uses can back a volume.  Every filesystem, loop device and mount is the
test's own, under its directory.
"""
import errno
import os
import subprocess
import time

import pytest

from conftest import sha256_file

MiB = 1 << 20


def write(dev, off_mib, mib, byte):
    """Writes @mib MiB of @byte at @off_mib MiB of @dev; must succeed."""
    subprocess.run(["dd", "of=" + dev, "bs=1M", "count=%d" % mib, "seek=%d" % off_mib,
                    "conv=notrunc,fsync", "iflag=fullblock", "status=none"],
                   input=bytes([byte]) * (mib * MiB), check=True)


def read_at(dev, off_mib, mib=1):
    with open(dev, "rb") as f:
        f.seek(off_mib * MiB)
        return f.read(mib * MiB)


def sh(*cmd):
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True).stdout.strip()


def small_fs(root, name, fstype, size):
    """A filesystem of its own, on a loop device over an image under @root,
    mounted at @root/@name; returns (mount point, loop device)."""
    img = os.path.join(root, name + ".img")
    mnt = os.path.join(root, name)
    os.mkdir(mnt)
    with open(img, "wb") as f:
        f.truncate(size)
    if fstype == "xfs":
        sh("mkfs.xfs", "-q", "-f", img)
    else:
        sh("mkfs.ext4", "-q", "-F", "-E", "nodiscard", img)
    loop = sh("losetup", "--find", "--show", img)
    sh("mount", loop, mnt)
    return mnt, loop


def tmpfs(path):
    os.makedirs(path, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", path)


def shadow_of(d, sid):
    (s,) = [s for s in d.shadows() if s["id"] == sid]
    return s


def shadow_dev(d, sid):
    return os.path.join(d.run, "dev", "shadows", sid)


def with_persistent_shadow(d, name, size="32M"):
    """A volume with 4 MiB written, a persistent shadow of it, then 4 MiB
    more written over the first (copied into the diff area); returns (the
    shadow's id, the sha256 of the volume at its instant, the device)."""
    dev = d.create_volume(name, size)["device"]
    write(dev, 0, 4, 1)
    ref = sha256_file(dev)
    sid = d.shadow(name, persistent=True)["shadows"][0]["id"]
    write(dev, 0, 4, 2)
    assert sha256_file(shadow_dev(d, sid)) == ref
    return sid, ref, dev


def assert_served(d, name, dev):
    """The volume is listed with a device that reads and writes."""
    v = d.volume(name)
    assert v["device"] == dev and os.path.exists(dev), v
    write(dev, 12, 1, 0x5a)
    assert read_at(dev, 12) == bytes([0x5a]) * MiB


def assert_lost(d, sid):
    s = shadow_of(d, sid)
    assert s["state"] == "invalid", s
    with pytest.raises(OSError) as e:
        with open(shadow_dev(d, sid), "rb") as f:
            f.read(4096)
    assert e.value.errno == errno.EIO


# ---- at start ----

def test_missing_at_start_comes_up_with_its_shadows_listed_lost(vssd):
    sid, ref, dev = with_persistent_shadow(vssd, "m")
    diff = vssd.volume("m")["diff_area"]
    vssd.stop()
    os.unlink(diff)
    vssd.start()
    v = vssd.volume("m")
    assert v["state"] == "degraded" and "missing" in v["reason"], v
    assert v["diff_area"] != diff and os.path.exists(v["diff_area"]), v
    assert "lost" in v["reason"] and "1 persistent shadow" in v["reason"], v
    assert_served(vssd, "m", dev)
    assert_lost(vssd, sid)
    assert "queued in the old diff area" in vssd.log()
    # The name is taken, and the shadow is deleted like any other.
    r = vssd.vss("volume", "create", "m", "--size", "16M", check=False)
    assert r.returncode == 1 and "exists" in r.stderr
    vssd.vss("delete", "shadows", "--shadow", sid)
    assert vssd.volume("m")["state"] == "online"
    # Shadows work again, and survive a restart.
    sid2 = vssd.shadow("m", persistent=True)["shadows"][0]["id"]
    vssd.restart()
    assert shadow_of(vssd, sid2)["state"] == "valid"
    assert vssd.volume("m")["reason"] is None


def test_corrupt_at_start_is_kept_aside(vssd):
    sid, ref, dev = with_persistent_shadow(vssd, "c")
    diff = vssd.volume("c")["diff_area"]
    vssd.stop()
    with open(diff, "r+b") as f:
        f.write(b"\xde\xad" * 4096)       # both superblocks
    damaged = sha256_file(diff)
    vssd.start()
    v = vssd.volume("c")
    assert v["state"] == "degraded" and "kept as" in v["reason"], v
    aside = [n for n in os.listdir(os.path.dirname(diff))
             if n.startswith(os.path.basename(diff) + ".damaged-")]
    assert len(aside) == 1, os.listdir(os.path.dirname(diff))
    # Renamed, never deleted nor changed: it is evidence.
    assert sha256_file(os.path.join(os.path.dirname(diff), aside[0])) == damaged
    assert not os.path.exists(diff)
    assert_served(vssd, "c", dev)
    assert_lost(vssd, sid)
    # Another restart: still listed, still invalid, the reason kept.
    vssd.restart()
    assert_lost(vssd, sid)
    assert "kept as" in vssd.volume("c")["reason"]


def test_another_diff_area_in_its_place_is_kept_aside(vssd):
    """Another volume's diff area (same size: the engine would take it) put
    at the path: refused by its identity before anything in it is replayed."""
    sid_p, _, dev_p = with_persistent_shadow(vssd, "p")
    sid_q, ref_q, _ = with_persistent_shadow(vssd, "q")
    diff_p, diff_q = vssd.volume("p")["diff_area"], vssd.volume("q")["diff_area"]
    vssd.stop()
    sh("cp", "--sparse=always", diff_q, diff_p)
    foreign = sha256_file(diff_p)
    vssd.start()
    assert_lost(vssd, sid_p)
    assert [s["volume"] for s in vssd.shadows() if s["id"] == sid_q] == ["q"]
    v = vssd.volume("p")
    assert v["state"] == "degraded" and "not this volume's diff area" in v["reason"], v
    assert sha256_file(shadow_dev(vssd, sid_q)) == ref_q
    (aside,) = [n for n in os.listdir(os.path.dirname(diff_p))
                if n.startswith(os.path.basename(diff_p) + ".damaged-")]
    assert sha256_file(os.path.join(os.path.dirname(diff_p), aside)) == foreign
    assert_served(vssd, "p", dev_p)


def test_unwritable_at_start_is_copied_with_its_shadows(vssd):
    mnt, _ = small_fs(vssd.root, "ro", "ext4", 64 * MiB)
    dev = vssd.create_volume("u", "32M")["device"]
    vssd.vss("add", "shadowstorage", "--for", "u", "--on", mnt)
    write(dev, 0, 4, 1)
    ref = sha256_file(dev)
    sid = vssd.shadow("u", persistent=True)["shadows"][0]["id"]
    write(dev, 0, 4, 2)
    diff = vssd.volume("u")["diff_area"]
    # A second one, whose failure was recorded in the state directory only.
    vssd.create_volume("f", "16M")
    vssd.vss("add", "shadowstorage", "--for", "f", "--on", mnt)
    sid_f = vssd.shadow("f", persistent=True)["shadows"][0]["id"]
    diff_f = vssd.volume("f")["diff_area"]
    vssd.stop()
    before = sha256_file(diff)
    open(os.path.join(vssd.state, "failed", os.path.basename(diff_f)), "w").close()
    sh("mount", "-o", "remount,ro", mnt)
    vssd.start()
    s = shadow_of(vssd, sid_f)
    assert s["state"] == "invalid", s       # the copy keeps the failure
    assert "copied to" in vssd.volume("f")["reason"]
    v = vssd.volume("u")
    assert v["state"] == "degraded" and "copied to" in v["reason"], v
    assert v["diff_area"].startswith(vssd.state + "/diff/"), v
    # Nothing lost: the shadow reads as before, the live volume too.
    s = shadow_of(vssd, sid)
    assert s["state"] == "valid" and "persistent" in s["attributes"], s
    assert sha256_file(shadow_dev(vssd, sid)) == ref
    assert read_at(dev, 0) == bytes([2]) * MiB
    assert sha256_file(diff) == before     # the original is left as it was
    assert_served(vssd, "u", dev)


def test_origin_that_cannot_be_opened_is_listed_and_can_be_deleted(vssd):
    backing = os.path.join(vssd.root, "origin.img")
    with open(backing, "wb") as f:
        f.truncate(16 * MiB)
    vssd.vss("volume", "create", "o", "--backing", backing)
    vssd.shadow("o", persistent=True)
    diff = vssd.volume("o")["diff_area"]
    vssd.stop()
    os.rename(backing, backing + ".away")
    vssd.start()
    v = vssd.volume("o")
    assert v["state"] == "offline" and "origin.img" in v["reason"], v
    assert v["device"] is None and v["shadows"] == 1, v
    r = vssd.vss("volume", "create", "o", "--size", "16M", check=False)
    assert r.returncode == 1 and "delete it first" in r.stderr, r.stderr
    r = vssd.vss("volume", "delete", "o", check=False)
    assert r.returncode == 1 and "shadow" in r.stderr, r.stderr
    vssd.vss("volume", "delete", "o", "--force")
    assert vssd.json("volume", "list")["volumes"] == []
    assert not os.path.exists(diff)
    assert os.path.exists(backing + ".away")      # not vssd's to delete
    vssd.restart()
    assert vssd.json("volume", "list")["volumes"] == []
    vssd.create_volume("o", "16M")


# ---- under a running vssd ----

def test_deleted_under_running_vssd_is_no_longer_persistent(vssd):
    sid, ref, dev = with_persistent_shadow(vssd, "d")
    diff = vssd.volume("d")["diff_area"]
    os.unlink(diff)
    # Noticed before the next operation.
    s = shadow_of(vssd, sid)
    assert "persistent" not in s["attributes"] and s["state"] == "valid", s
    v = vssd.volume("d")
    assert v["state"] == "degraded" and "deleted" in v["reason"], v
    # The open file is intact: the shadow still reads right.
    write(dev, 8, 2, 3)
    assert sha256_file(shadow_dev(vssd, sid)) == ref
    r = vssd.vss("create", "shadow", "--for", "d", "--persistent", check=False)
    assert r.returncode == 1 and "persistent" in r.stderr, r.stderr
    assert not os.path.exists(diff)
    # Its shadows gone and their devices closed, the volume gets a fresh
    # diff area.
    reader = open(shadow_dev(vssd, sid), "rb")
    vssd.vss("delete", "shadows", "--shadow", sid)
    assert vssd.volume("d")["state"] == "degraded"
    reader.close()
    deadline = time.time() + 5
    while vssd.volume("d")["state"] != "online":
        assert time.time() < deadline, vssd.volume("d")
        time.sleep(0.05)
    v = vssd.volume("d")
    assert v["diff_area"] != diff, v
    assert os.path.exists(v["diff_area"])
    sid2 = vssd.shadow("d", persistent=True)["shadows"][0]["id"]
    vssd.restart()
    assert shadow_of(vssd, sid2)["state"] == "valid"


def test_replaced_under_running_vssd_is_noticed_by_the_housekeeper(daemon_factory):
    d = daemon_factory(env={"VSS_TEST_DIFF_CHECK_MS": "200"})
    sid, ref, dev = with_persistent_shadow(d, "r")
    diff = d.volume("r")["diff_area"]
    other = diff + ".other"
    with open(other, "wb") as f:
        f.write(b"not yours" * 1000)
    want = sha256_file(other)
    os.rename(other, diff)
    deadline = time.time() + 10
    while "was replaced by another file" not in d.log():
        assert time.time() < deadline, d.log()
        time.sleep(0.1)
    write(dev, 8, 2, 3)     # copies for the shadow: into the open file only
    assert sha256_file(diff) == want
    assert sha256_file(shadow_dev(d, sid)) == ref
    assert "persistent" not in shadow_of(d, sid)["attributes"]
    d.vss("delete", "shadows", "--all")
    v = d.volume("r")
    assert v["diff_area"] != diff and v["state"] == "online", v
    assert sha256_file(diff) == want        # never touched, never removed
    # Nor is what is at a detached diff area's path removed with its volume.
    d.shadow("r")
    os.rename(v["diff_area"], v["diff_area"] + ".moved")
    with open(v["diff_area"], "wb") as f:
        f.write(b"someone else's")
    assert d.volume("r")["state"] == "degraded"
    d.vss("volume", "delete", "r", "--force")
    with open(v["diff_area"], "rb") as f:
        assert f.read() == b"someone else's"
    assert sha256_file(diff) == want


# ---- on a tmpfs ----

def test_tmpfs_shadow_storage_is_warned_and_survives_losing_it(vssd):
    where = os.path.join(vssd.root, "tmp")
    tmpfs(where)
    dev = vssd.create_volume("t", "16M")["device"]
    res = vssd.json("add", "shadowstorage", "--for", "t", "--on", where)
    assert any("tmpfs" in w and "restart" in w for w in res["warnings"]), res
    assert "tmpfs" in vssd.log()
    write(dev, 0, 2, 1)
    sid = vssd.shadow("t", persistent=True)["shadows"][0]["id"]
    write(dev, 0, 2, 2)
    # The machine restarts: the tmpfs comes back empty.
    vssd.stop()
    sh("umount", where)
    tmpfs(where)
    vssd.start()
    v = vssd.volume("t")
    assert v["state"] == "degraded" and "missing" in v["reason"], v
    assert os.path.dirname(v["diff_area"]) == where
    assert_served(vssd, "t", dev)
    assert_lost(vssd, sid)


def test_state_directory_on_tmpfs_is_warned(daemon_factory):
    d = daemon_factory(start=False)
    tmpfs(d.state)
    d.start()
    res = d.json("volume", "create", "s", "--size", "16M")
    assert any("tmpfs" in w for w in res["warnings"]), res
    assert "will not survive a restart" in d.log()


# ---- a failure that could not be recorded where it happened ----

def test_failure_nothing_beside_it_could_record_is_caught_at_start(vssd):
    """The filesystem holding the diff areas shuts down: neither the diff
    areas nor DIFF.failed beside them take the failure; the marks in the
    state and run directories do, each enough alone."""
    mnt, loop = small_fs(vssd.root, "xfs", "xfs", 320 * MiB)
    shadows = {}
    for name in ("a", "b"):
        dev = vssd.create_volume(name, "32M")["device"]
        vssd.vss("add", "shadowstorage", "--for", name, "--on", mnt)
        write(dev, 0, 2, 1)
        shadows[name] = (vssd.shadow(name, persistent=True)["shadows"][0]["id"], dev)
    diffs = {n: vssd.volume(n)["diff_area"] for n in shadows}
    sh("xfs_io", "-x", "-c", "shutdown", mnt)
    for name, (sid, dev) in shadows.items():
        write(dev, 4, 2, 7)     # needs copies: the diff area fails
        assert shadow_of(vssd, sid)["state"] == "invalid"
    marks = {n: [os.path.join(vssd.state, "failed", os.path.basename(p)),
                 os.path.join(vssd.run, "failed", os.path.basename(p))]
             for n, p in diffs.items()}
    for n in marks:
        assert all(os.path.exists(m) for m in marks[n]), (n, vssd.log())
    vssd.stop()
    sh("umount", mnt)
    sh("mount", loop, mnt)      # healthy again, as it was before the failure
    for n, p in diffs.items():
        assert os.path.exists(p) and not os.path.exists(p + ".failed")
    os.unlink(marks["a"][0])    # a: only the run directory remembers
    os.unlink(marks["b"][1])    # b: only the state directory does
    vssd.start()
    for name, (sid, dev) in shadows.items():
        s = shadow_of(vssd, sid)
        assert s["state"] == "invalid", (name, s)
        assert read_at(dev, 4) == bytes([7]) * MiB


def test_a_mark_that_cannot_be_read_counts_as_a_failure(vssd):
    sid, _, _ = with_persistent_shadow(vssd, "k")
    diff = vssd.volume("k")["diff_area"]
    vssd.stop()
    os.makedirs(os.path.join(vssd.run, "failed", os.path.basename(diff)))
    vssd.start()
    assert shadow_of(vssd, sid)["state"] == "invalid"


# ---- .failed files go with their diff area ----

def test_failure_records_go_with_their_diff_area(vssd):
    for name in ("x", "y"):
        vssd.create_volume(name, "16M")
    diffs = {n: vssd.volume(n)["diff_area"] for n in ("x", "y")}
    vssd.stop()
    records = {}
    for n, p in diffs.items():      # as a failure leaves them
        records[n] = [p + ".failed",
                      os.path.join(vssd.state, "failed", os.path.basename(p)),
                      os.path.join(vssd.run, "failed", os.path.basename(p))]
        for r in records[n]:
            os.makedirs(os.path.dirname(r), exist_ok=True)
            open(r, "w").close()
    vssd.start()
    vssd.vss("volume", "delete", "x")
    assert not os.path.exists(diffs["x"])
    assert [r for r in records["x"] if os.path.exists(r)] == []
    where = os.path.join(vssd.root, "elsewhere")
    os.mkdir(where)
    vssd.vss("add", "shadowstorage", "--for", "y", "--on", where)
    assert not os.path.exists(diffs["y"])
    assert [r for r in records["y"] if os.path.exists(r)] == []


# ---- --backing ----

@pytest.fixture
def two_volumes(vssd):
    """A volume on a backing file of the test's, its diff area elsewhere,
    and one vssd made in its state directory."""
    backing = os.path.join(vssd.root, "a.img")
    with open(backing, "wb") as f:
        f.truncate(16 * MiB)
    vssd.vss("volume", "create", "a", "--backing", backing)
    os.mkdir(os.path.join(vssd.root, "diffs"))
    vssd.vss("add", "shadowstorage", "--for", "a", "--on", os.path.join(vssd.root, "diffs"))
    vssd.create_volume("b", "16M")
    return vssd


def refused(d, backing, why):
    r = d.vss("volume", "create", "bad", "--backing", backing, check=False)
    assert r.returncode == 1, (backing, r.stdout, r.stderr)
    assert why in r.stderr, (backing, r.stderr)
    assert [v["name"] for v in d.json("volume", "list")["volumes"]] == ["a", "b"]


@pytest.fixture
def loops():
    """Loop devices a test attaches (to files anywhere): detached at its end."""
    made = []

    def attach(path):
        made.append(sh("losetup", "--find", "--show", path))
        return made[-1]

    yield attach
    for dev in made:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def test_backing_another_volumes_diff_area_or_hard_link(two_volumes):
    d = two_volumes
    refused(d, d.volume("a")["diff_area"], "is the diff area of volume a")
    refused(d, d.volume("b")["diff_area"], "lies in vssd's state directory")
    link_diff = os.path.join(d.root, "link-to-b.diff")
    os.link(d.volume("b")["diff_area"], link_diff)
    refused(d, link_diff, "is the diff area of volume b")
    link = os.path.join(d.root, "link-to-a.img")
    os.link(d.volume("a")["backing"], link)
    refused(d, link, "already backs volume a")
    link_b = os.path.join(d.root, "link-to-b.img")
    os.link(d.volume("b")["backing"], link_b)
    refused(d, link_b, "already backs volume b")


def test_backing_the_catalog_or_anything_of_vssd(two_volumes):
    d = two_volumes
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        path = os.path.join(d.state, name)
        assert os.path.exists(path), name
        refused(d, path, "state directory")
    link = os.path.join(d.root, "catalog-link")
    os.link(os.path.join(d.state, "catalog.db"), link)
    refused(d, link, "is vssd's own file")
    refused(d, os.path.join(d.run, "vssd.lock"), "run directory")


def test_backing_a_mounted_or_held_block_device(two_volumes):
    d = two_volumes
    mnt, loop = small_fs(d.root, "fs", "ext4", 32 * MiB)
    # 4 KiB blocks, as mkfs makes them from 512 MiB up: vss's loop device
    # has a 4 KiB logical block size, on which a 1 KiB-block ext4 does not
    # mount (doc/service.md).
    sh("umount", mnt)
    sh("mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "nodiscard", loop)
    sh("mount", loop, mnt)
    # Refused naming the holder: where it is mounted.
    refused(d, loop, "%s is in use: it is mounted at %s;" % (loop, mnt))
    # The move of an existing filesystem under vss (doc/service.md): unmount
    # it, make it a volume, mount it through vss at the same place: the
    # data is untouched, and it shadows like any volume.
    with open(os.path.join(mnt, "kept"), "wb") as f:
        f.write(b"before the move\n" * 1000)
    sh("umount", mnt)
    d.vss("volume", "create", "blk", "--backing", loop)
    # Held exclusively as long as it is served: nobody mounts it behind vss's back.
    r = subprocess.run(["mount", loop, mnt], capture_output=True, text=True)
    assert r.returncode != 0, "mounted a device vss serves"
    d.vss("volume", "mount", "blk", mnt)
    with open(os.path.join(mnt, "kept"), "rb") as f:
        assert f.read() == b"before the move\n" * 1000
    assert d.shadow(mnt)["shadows"][0]["volume"] == "blk"
    d.vss("delete", "shadows", "--all")
    d.vss("volume", "umount", "blk")
    d.vss("volume", "delete", "blk")
    sh("mount", loop, mnt)
    sh("umount", mnt)


def test_backing_vss_devices_and_loop_devices(two_volumes, loops):
    d = two_volumes
    refused(d, d.device("a"), "vss device")
    refused(d, loops(d.device("a")), "vss device")
    refused(d, loops(d.volume("b")["backing"]), "already backs volume b")
    refused(d, loops(d.volume("b")["diff_area"]), "diff area of volume b")
    # A file some loop device is attached to is in use.
    img = os.path.join(d.root, "attached.img")
    with open(img, "wb") as f:
        f.truncate(16 * MiB)
    loop = loops(img)
    refused(d, img, "loop device %s is attached" % loop)
    # So is a block device one is attached to.
    upper = loops(loop)
    refused(d, loop, "loop device %s is attached" % upper)
    sh("losetup", "-d", upper)
    sh("losetup", "-d", loop)
    d.vss("volume", "create", "ok", "--backing", img)
