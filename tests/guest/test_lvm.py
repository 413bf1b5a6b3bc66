"""The LVM provider on real logical volumes: a VG on a loop device under the
test's private directory, with a thin pool, thin LVs and classic LVs, ext4
and xfs.  Each shadow is checked against what its filesystem held at its
instant (files written before it, others after); sets over two LVs; a
classic snapshot that overflows is reported invalid; kill -9 of vssd, then
orphans removed and persistent shadows listed again; a snapshot vss did not
make is never touched.  The VG and its loop device go even on failure.
"""
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

mounts_under = sys.modules["system_conftest"].mounts_under

VG_SIZE = 1200 << 20


def sh(*argv, env=None, check=True):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise AssertionError("%s -> %d: %s" % (" ".join(map(str, argv)), r.returncode, r.stderr))
    return r


class Lvm:
    """A VG named after the test's directory on a loop device in it; lvm
    configured for a machine without udev through LVM_SYSTEM_DIR."""

    def __init__(self, root):
        self.root = root
        self.etc = os.path.join(root, "lvm-etc")
        os.makedirs(self.etc)
        with open(os.path.join(self.etc, "lvm.conf"), "w") as f:
            f.write("activation { udev_sync = 0 udev_rules = 0 verify_udev_operations = 1 "
                    "monitoring = 0 }\nbackup { backup = 0 archive = 0 }\n"
                    "devices { obtain_device_list_from_udev = 0 }\n")
        self.env = dict(os.environ, LVM_SYSTEM_DIR=self.etc)
        self.vg = "vsst" + uuid.uuid4().hex[:8]
        img = os.path.join(root, "pv.img")
        with open(img, "wb") as f:
            f.truncate(VG_SIZE)
        self.loop = sh("losetup", "-f", "--show", img).stdout.strip()
        self.lvm("pvcreate", "-qq", self.loop)
        self.lvm("vgcreate", "-qq", self.vg, self.loop)
        self.mounts = []

    def lvm(self, *args, check=True):
        return sh("lvm", *args, env=self.env, check=check)

    def thin_pool(self, size="400m"):
        self.lvm("lvcreate", "-qq", "-L", size, "-T", self.vg + "/pool")

    def lv(self, name, fstype, size="320m", thin=False):
        if thin:
            self.lvm("lvcreate", "-qq", "-V", size, "-T", self.vg + "/pool", "-n", name)
        else:
            self.lvm("lvcreate", "-qq", "-L", size, "-n", name, self.vg)
        dev = "/dev/mapper/%s-%s" % (self.vg, name)
        sh("mkfs." + fstype, "-q", dev)
        mnt = os.path.join(self.root, name)
        os.makedirs(mnt)
        sh("mount", dev, mnt)
        self.mounts.append(mnt)
        return mnt

    def lvs(self):
        r = self.lvm("lvs", "--reportformat", "json", "-o", "lv_name,lv_tags,lv_attr", self.vg)
        return {lv["lv_name"]: lv for lv in json.loads(r.stdout)["report"][0]["lv"]}

    def cleanup(self):
        for m in mounts_under(self.root):
            sh("umount", m, check=False)
        # Only this test's VG, on this test's loop device.
        self.lvm("vgremove", "-qq", "-ff", "-y", self.vg, check=False)
        self.lvm("pvremove", "-qq", "-ff", "-y", self.loop, check=False)
        sh("losetup", "-d", self.loop, check=False)


@pytest.fixture
def lvm(workdir):
    v = Lvm(workdir)
    yield v
    v.cleanup()


@pytest.fixture
def daemon(lvm, daemon_factory):
    # Started after the VG exists; cleaned up (stopped) before it is removed.
    return daemon_factory(env={"LVM_SYSTEM_DIR": lvm.etc})


def write(path, data):
    with open(path, "w") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def tree(d):
    out = {}
    for dirpath, _, files in os.walk(d):
        for name in files:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, d)] = f.read()
    return out


def expose(d, shadow, root):
    mnt = os.path.join(root, "x-" + shadow[:8])
    os.makedirs(mnt)
    d.vss("expose", shadow, mnt)
    return mnt


def fill(mnt, name, tag, n=20):
    os.makedirs(os.path.join(mnt, name), exist_ok=True)
    for i in range(n):
        write(os.path.join(mnt, name, "f%d" % i), "%s %d\n" % (tag, i) * 100)


@pytest.mark.parametrize("thin,fstype", [(True, "ext4"), (False, "xfs")])
def test_shadow_of_one_lv_is_its_instant(lvm, daemon, thin, fstype):
    if thin:
        lvm.thin_pool()
    mnt = lvm.lv("data", fstype, thin=thin)
    fill(mnt, "d", "before")
    which = daemon.json("list", "providers", "--for", mnt)
    assert which["selected"] == "lvm", which
    assert mnt in [p for p in which["providers"] if p["name"] == "lvm"][0]["paths"]
    before = tree(mnt)
    t0 = time.monotonic()
    s = daemon.shadow(mnt)
    took = time.monotonic() - t0
    shadow = s["shadows"][0]["id"]
    print("%s %s shadow: %.2f s" % ("thin" if thin else "classic", fstype, took))
    fill(mnt, "d", "after")
    fill(mnt, "e", "new")
    lvs = lvm.lvs()
    snap = lvs["vss-" + shadow]
    assert "vss" in snap["lv_tags"].split(",")
    assert snap["lv_attr"][1] == "r"          # read-only
    listed = daemon.shadows()
    assert [x["provider"] for x in listed] == ["lvm"]
    assert listed[0]["state"] == "valid" and listed[0]["set"] == s["set"]
    x = expose(daemon, shadow, lvm.root)
    assert tree(x) == before
    assert tree(mnt) != before
    daemon.vss("unexpose", x)
    daemon.vss("delete", "shadows", "--shadow", shadow)
    assert "vss-" + shadow not in lvm.lvs()
    assert daemon.shadows() == []


def test_set_over_two_lvs_is_one_instant(lvm, daemon):
    a = lvm.lv("a", "ext4", size="200m")
    b = lvm.lv("b", "xfs")
    fill(a, "d", "a-before")
    fill(b, "d", "b-before")
    before = (tree(a), tree(b))
    s = daemon.shadow(a, b)
    fill(a, "d", "a-after")
    fill(b, "d", "b-after")
    ids = [x["id"] for x in s["shadows"]]
    assert len(ids) == 2 and all(x["provider"] == "lvm" for x in s["shadows"])
    assert {x["set"] for x in daemon.shadows()} == {s["set"]}
    got = tuple(tree(expose(daemon, i, lvm.root)) for i in ids)
    assert got == before
    # Both LVs live again, writable.
    write(os.path.join(a, "z"), "z")
    write(os.path.join(b, "z"), "z")


def test_classic_overflow_is_invalid(lvm, daemon):
    mnt = lvm.lv("small", "xfs")
    s = daemon.shadow(mnt)
    shadow = s["shadows"][0]["id"]
    # 1/5 of 320 MiB of shadow storage; 100 MiB of new data overflows it.
    write_mib(os.path.join(mnt, "big"), 100)
    listed = {x["id"]: x for x in daemon.shadows()}
    assert listed[shadow]["state"] == "invalid"
    daemon.vss("delete", "shadows", "--shadow", shadow)
    assert "vss-" + shadow not in lvm.lvs()


def test_kill9_orphans_removed_persistent_kept_foreign_untouched(lvm, daemon):
    lvm.thin_pool()
    mnt = lvm.lv("t", "ext4", size="200m", thin=True)
    fill(mnt, "d", "one")
    before = tree(mnt)
    keep = daemon.shadow(mnt, persistent=True)["shadows"][0]["id"]
    gone = daemon.shadow(mnt)["shadows"][0]["id"]
    # Made by someone else: one tagged and named as if vss had made it, one plain.
    foreign = "vss-" + str(uuid.uuid4())
    lvm.lvm("lvcreate", "-qq", "-s", "-n", foreign, "--addtag", "vss", lvm.vg + "/t")
    lvm.lvm("lvcreate", "-qq", "-s", "-n", "theirs", lvm.vg + "/t")
    daemon.kill9()
    daemon.start()
    lvs = lvm.lvs()
    assert "vss-" + gone not in lvs, daemon.log()
    assert "vss-" + keep in lvs and foreign in lvs and "theirs" in lvs
    listed = daemon.shadows()
    assert [x["id"] for x in listed] == [keep]
    fill(mnt, "d", "two")
    assert tree(expose(daemon, keep, lvm.root)) == before
    daemon.vss("delete", "shadows", "--all")
    lvs = lvm.lvs()
    assert "vss-" + keep not in lvs and foreign in lvs and "theirs" in lvs


def test_no_room_for_a_classic_snapshot_names_the_vg(lvm, daemon):
    mnt = lvm.lv("full", "ext4", size="1180m")
    r = daemon.vss("create", "shadow", "--for", mnt, check=False)
    assert r.returncode != 0
    assert lvm.vg in r.stderr and "no room" in r.stderr, r.stderr
    assert daemon.shadows() == []
    # The LV is live and writable again.
    write(os.path.join(mnt, "ok"), "ok")


def write_mib(path, n):
    with open(path, "wb") as f:
        for _ in range(n):
            f.write(os.urandom(1 << 20))
        f.flush()
        os.fsync(f.fileno())


def test_classic_shadow_storage_listed_and_grown(lvm, daemon):
    mnt = lvm.lv("grow", "xfs")
    shadow = daemon.shadow(mnt)["shadows"][0]["id"]
    rows = daemon.json("list", "shadowstorage", "--for", mnt)["shadowstorage"]
    assert len(rows) == 1 and rows[0]["shadow"] == shadow
    assert rows[0]["volume"] == lvm.vg + "/grow"
    assert rows[0]["max"] == 64 << 20          # 1/5 of 320 MiB
    daemon.vss("resize", "shadowstorage", "--for", mnt, "--maxsize", "160M")
    rows = daemon.json("list", "shadowstorage", "--for", mnt)["shadowstorage"]
    assert rows[0]["max"] == 160 << 20
    # 100 MiB of new data would have overflowed the 64 MiB it started with.
    write_mib(os.path.join(mnt, "big"), 100)
    listed = daemon.shadows()
    assert listed[0]["state"] == "valid"
    assert listed[0]["diff_bytes"] >= 100 << 20
    rows = daemon.json("list", "shadowstorage", "--for", mnt)["shadowstorage"]
    assert rows[0]["used"] >= 100 << 20 and not rows[0]["invalid"]


def chunks_differing(dev_a, dev_b, size, unit):
    out = []
    with open(dev_a, "rb") as a, open(dev_b, "rb") as b:
        for off in range(0, size, unit):
            if a.read(unit) != b.read(unit):
                out.append(off)
    return out


def test_thin_delta_changed_blocks_are_the_blocks_written(lvm, daemon):
    lvm.thin_pool()
    mnt = lvm.lv("cbt", "ext4", size="64m", thin=True)
    fill(mnt, "d", "before")
    a = daemon.shadow(mnt)["shadows"][0]["id"]
    write_mib(os.path.join(mnt, "new"), 3)
    sh("sync")
    b = daemon.shadow(mnt)["shadows"][0]["id"]
    d = daemon.json("diff", a, b)
    unit, size = d["block_size"], d["size"]
    assert unit >= 4096 and size == 64 << 20
    reported = set()
    for off, length in d["extents"]:
        assert off % unit == 0 and length % unit == 0
        reported.update(range(off, off + length, unit))
    devs = {x["id"]: x["device"] for x in daemon.shadows()}
    differing = chunks_differing(devs[a], devs[b], size, unit)
    print("thin_delta: %d bytes reported in %d extents, %d chunks of %d bytes differ"
          % (d["changed_bytes"], len(d["extents"]), len(differing), unit))
    # Every chunk whose bytes differ is reported; and little else is (the
    # file's 3 MiB, ext4's journal and metadata), not the whole LV.
    assert set(differing) <= reported
    assert d["changed_bytes"] >= 3 << 20
    assert d["changed_bytes"] <= len(differing) * unit + (8 << 20)
    r = daemon.vss("diff", a, "now", check=False)
    assert r.returncode != 0 and "not up to now" in r.stderr
