"""Providers: btrfs subvolumes shadowed by snapshots (against manifests of
their instant, in one set with a managed ext4 volume, across a kill -9),
refusal of filesystems no provider can shadow, and --allow-live.  Every
btrfs filesystem is a loop-mounted image under the test's directory; the
fixtures unmount and detach it even on failure.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import BUILD, VSS, mkfs_btrfs
from test_fs import TREE_WRITER, manifest, wait_stopped

FUSE_HELLO = os.path.abspath(os.path.join(BUILD, "tests", "btrfs", "fuse_hello"))


def make_btrfs(root, name="bt", size=300 << 20, img_dir=None):
    img = os.path.join(img_dir or root, name + ".img")
    mnt = os.path.join(root, name)
    with open(img, "wb") as f:
        f.truncate(size)
    mkfs_btrfs(img)
    os.makedirs(mnt, exist_ok=True)
    subprocess.run(["mount", "-o", "loop", img, mnt], check=True)
    return mnt


def subvolume(path):
    subprocess.run(["btrfs", "subvolume", "create", path], check=True,
                   capture_output=True)
    return path


def snapshots(mnt):
    d = os.path.join(mnt, ".vss-snapshots")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_btrfs_busy_subvolume_matches_manifests(vssd):
    mnt = make_btrfs(vssd.root)
    sub = subvolume(os.path.join(mnt, "sub"))
    subvolume(os.path.join(sub, "nested"))
    data = os.path.join(sub, "data")
    os.mkdir(data)
    provs = {p["name"]: p for p in vssd.json("list", "providers")["providers"]}
    assert mnt in provs["btrfs"]["paths"]
    assert provs["vss-cow"]["priority"] > provs["btrfs"]["priority"]
    which = vssd.json("list", "providers", "--for", data)
    assert which["selected"] == "btrfs"
    sup = {p["name"]: p.get("supports") for p in which["providers"]}
    assert (sup["vss-cow"], sup["btrfs"]) == (False, True)
    assert not sup.get("rbd")   # built with librbd: listed, and it says no
    w = vssd.spawn([sys.executable, "-c", TREE_WRITER, data, "7"])
    taken = []
    for k in range(3):
        time.sleep(0.5)
        w.send_signal(signal.SIGSTOP)
        wait_stopped(w.pid)
        m = manifest(sub)
        res = vssd.shadow(sub if k % 2 == 0 else data)
        w.send_signal(signal.SIGCONT)
        assert any("nested" in x for x in res["warnings"]) == (k % 2 == 0)
        sh = res["shadows"][0]
        assert sh["provider"] == "btrfs"
        assert sh["target_path"] == sh["device"] + ("" if k % 2 == 0 else "/data")
        taken.append((sh, m))
    assert w.poll() is None, "the writer died"
    w.kill()
    w.wait()
    for i, (sh, m) in enumerate(taken):
        assert sh["device"].startswith(os.path.join(mnt, ".vss-snapshots", "vss."))
        got = manifest(sh["device"])
        assert len(got) > 5
        assert got == m, "snapshot %s differs from its manifest" % sh["id"]
        exp = os.path.join(vssd.root, "exp%d" % i)
        vssd.vss("expose", sh["id"], exp)
        try:
            assert manifest(exp) == m
            with pytest.raises(OSError):
                open(os.path.join(exp, "x"), "w")
        finally:
            vssd.vss("unexpose", exp)
    assert vssd.shadows("--for", mnt) == []    # another subvolume
    listed = vssd.shadows("--for", data)
    assert [s["id"] for s in listed] == [sh["id"] for sh, _ in taken]
    assert all(s["provider"] == "btrfs" for s in listed)
    assert vssd.vss("delete", "shadows", "--for", sub, "--all").returncode == 0
    assert snapshots(mnt) == []


def test_mixed_set_keeps_write_order(vssd):
    """A writer creates file i on a managed ext4 volume (A), then on a btrfs
    subvolume (B): no set may hold B's file i without A's."""
    bt = subvolume(os.path.join(make_btrfs(vssd.root), "b"))
    ma = os.path.join(vssd.root, "ma")
    vssd.create_volume("A", "128M")
    vssd.vss("volume", "mount", "A", ma, "--mkfs", "ext4")
    writer = r"""
import os, sys
i = 0
while True:
    i += 1
    for d in sys.argv[1:]:
        fd = os.open(os.path.join(d, "f%06d" % i), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"%d\n" % i)
        os.close(fd)
"""
    w = vssd.spawn([sys.executable, "-c", writer, ma, bt])
    time.sleep(0.3)
    sets = [vssd.shadow(ma, bt) for _ in range(4)]
    w.kill()
    w.wait()
    for k, s in enumerate(sets):
        by = {sh["provider"]: sh for sh in s["shadows"]}
        assert set(by) == {"vss-cow", "btrfs"}
        exp = os.path.join(vssd.root, "e%d" % k)
        vssd.vss("expose", by["vss-cow"]["id"], exp)
        try:
            fa = {f for f in os.listdir(exp) if f.startswith("f")}
            fb = {f for f in os.listdir(by["btrfs"]["device"]) if f.startswith("f")}
            assert fb, "nothing written to B yet"
            assert fb <= fa, sorted(fb - fa)[:5]
            assert len(fa) - len(fb) <= 1
        finally:
            vssd.vss("unexpose", exp)
    assert len({s["set"] for s in vssd.shadows()}) == 4


def test_btrfs_under_a_member_of_the_set_is_refused(vssd):
    ma = os.path.join(vssd.root, "ma")
    vssd.create_volume("A", "256M")
    vssd.vss("volume", "mount", "A", ma, "--mkfs", "ext4")
    bt = make_btrfs(vssd.root, "inner", 128 << 20, img_dir=ma)
    try:
        r = vssd.vss("create", "shadow", "--for", ma, "--for", bt, check=False)
        assert r.returncode == 1 and "refusing to freeze" in r.stderr, r.stderr
        assert vssd.shadows() == [] and snapshots(bt) == []
        assert vssd.shadow(bt)["shadows"][0]["provider"] == "btrfs"   # alone: fine
        vssd.vss("delete", "shadows", "--all")
    finally:
        subprocess.run(["umount", bt], capture_output=True)
    # btrfs on a loop device over a raw volume of the same set: refused too
    # (its commit would wait for the volume's gate, held until it returns).
    vssd.create_volume("R", "160M")
    loop = subprocess.run(["losetup", "--find", "--show", vssd.device("R")], check=True,
                          capture_output=True, text=True).stdout.strip()
    rb = os.path.join(vssd.root, "rb")
    os.mkdir(rb)
    try:
        mkfs_btrfs(loop)
        subprocess.run(["mount", loop, rb], check=True)
        r = vssd.vss("create", "shadow", "--for", "R", "--for", rb, check=False)
        assert r.returncode == 1 and "lives on volume R" in r.stderr, r.stderr
        assert vssd.shadows() == []
    finally:
        subprocess.run(["umount", rb], capture_output=True)
        subprocess.run(["losetup", "-d", loop], capture_output=True)


def test_refusals_and_allow_live(vssd):
    tmp = os.path.join(vssd.root, "tmp")
    os.mkdir(tmp)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "vsstest", tmp], check=True)
    r = vssd.vss("create", "shadow", "--for", tmp, check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("vss: error: ") and "tmpfs" in r.stderr
    assert "--allow-live" in r.stderr
    which = vssd.json("list", "providers", "--for", tmp)
    assert which["selected"] is None and "tmpfs" in which["refusal"]
    assert "no provider" in vssd.vss("list", "providers", "--for", tmp).stdout
    r = vssd.vss("create", "shadow", "--for", tmp, "--provider", "btrfs", check=False)
    assert r.returncode == 1 and "not on btrfs" in r.stderr
    r = vssd.vss("create", "shadow", "--for", tmp, "--provider", "nosuch", check=False)
    assert r.returncode == 1 and "no provider named" in r.stderr
    if os.path.exists(FUSE_HELLO):
        for kind, opts, word in (("fuse", [], "FUSE"), ("sshfs", ["-o", "subtype=sshfs"],
                                                         "fuse.sshfs")):
            fm = os.path.join(vssd.root, kind)
            os.mkdir(fm)
            vssd.spawn([FUSE_HELLO, "-f", "-s"] + opts + [fm])
            deadline = time.time() + 5
            while not os.path.ismount(fm):
                assert time.time() < deadline, "the FUSE helper did not mount"
                time.sleep(0.05)
            r = vssd.vss("create", "shadow", "--for", fm, check=False)
            assert r.returncode == 1 and word in r.stderr, r.stderr
    r = vssd.vss("create", "shadow", "--for", tmp, "--provider", "live", check=False)
    assert r.returncode == 1 and "--allow-live" in r.stderr
    res = vssd.json("create", "shadow", "--for", tmp, "--allow-live")
    sh = res["shadows"][0]
    assert sh["provider"] == "live" and sh["live"] and sh["device"] == tmp
    assert sh["target_path"] == tmp
    assert any("tmpfs" in x for x in res["warnings"])
    listed = vssd.shadows()
    assert listed[0]["provider"] == "live" and "live" in listed[0]["attributes"]
    assert "read live: --allow-live" in vssd.log()
    assert vssd.vss("delete", "shadows", "--all").returncode == 0
    assert vssd.shadows() == []


def test_btrfs_orphans_after_kill9(daemon_factory):
    d = daemon_factory()
    bt = make_btrfs(d.root)
    temp = d.shadow(bt)["shadows"][0]
    pers = d.shadow(bt, persistent=True)["shadows"][0]
    other = daemon_factory("other").shadow(bt)["shadows"][0]
    assert len(snapshots(bt)) == 3
    d.kill9()
    d.start()
    assert [s["id"] for s in d.shadows()] == [pers["id"]]
    assert d.shadows()[0]["provider"] == "btrfs"
    assert d.shadows()[0]["target_path"] == pers["device"]
    assert not os.path.exists(temp["device"])
    assert os.path.isdir(pers["device"]) and os.path.isdir(other["device"])
    d.restart()
    assert [s["id"] for s in d.shadows()] == [pers["id"]]
    d.vss("delete", "shadows", "--all")
    assert snapshots(bt) == [os.path.basename(other["device"])]


def test_kill9_inside_a_mixed_set(daemon_factory):
    """vssd dies inside the freeze of a set with a btrfs member: after the
    restart nothing of that set is left, and its catalog row is forgotten."""
    d = daemon_factory(env={"VSS_TEST_FREEZE_HOLD_MS": "4000"})
    bt = make_btrfs(d.root)
    ma = os.path.join(d.root, "ma")
    d.create_volume("A", "64M")
    d.vss("volume", "mount", "A", ma, "--mkfs", "ext4")
    c = d.spawn([VSS, "--run-dir", d.run, "create", "shadow", "--for", ma, "--for", bt],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while "holding the freeze" not in d.log():
        assert time.time() < deadline
        time.sleep(0.05)
    d.kill9()
    c.wait(10)
    assert c.returncode != 0
    d.extra_env = {}
    d.start()
    assert d.shadows() == []
    assert snapshots(bt) == []
    assert "forgotten: its snapshot does not exist" in d.log()
