"""A restart brings back what the administrator mounted: volumes mounted
with `vss volume mount` and shadows exposed with `vss expose`, after a clean
stop (SIGTERM) and after `kill -9` in the middle of writes, with the same
content; what cannot come back is logged, forgotten, and never stops vssd
from starting.  Everything is under the test's own directory.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import loops_under, mounts_under
from test_fs import TREE_WRITER, manifest, wait_stopped
from test_providers import make_btrfs


def mount_options(path):
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == path:
                return fields[3].split(",")
    return None


def loop_of(path):
    """The source (a loop device) of the mount at @path."""
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == path:
                return fields[0]
    return None


def exposed(d):
    """{shadow id: directory} of every exposed shadow."""
    return {s["id"]: s["exposed"] for s in d.shadows() if s["exposed"]}


def wait_loops(d, want, timeout=5):
    """Waits until the loop devices under the test's directory are @want
    (a loop device detaches a moment after its last user goes)."""
    deadline = time.time() + timeout
    while sorted(loops_under(d.root)) != sorted(want):
        assert time.time() < deadline, (loops_under(d.root), want)
        time.sleep(0.05)


def setup_volume(d, name, mnt, seed, size="256M", fstype="ext4"):
    """A volume with @fstype mounted at @mnt (with noatime), a tree of files
    written into it; returns the writer, stopped."""
    d.create_volume(name, size)
    d.vss("volume", "mount", name, mnt, "--mkfs", fstype, "-o", "noatime")
    data = os.path.join(mnt, "data")
    os.mkdir(data)
    w = d.spawn([sys.executable, "-c", TREE_WRITER, data, str(seed)])
    time.sleep(0.7)
    w.send_signal(signal.SIGSTOP)
    wait_stopped(w.pid)
    return w


def test_clean_restart_brings_back_mounts_and_exposures(vssd):
    mnt, exp, tmp = (os.path.join(vssd.root, x) for x in ("mnt", "exp", "tmp"))
    w = setup_volume(vssd, "r", mnt, 11)
    at_shadow = manifest(mnt)
    sid = vssd.shadow(mnt, persistent=True)["shadows"][0]["id"]
    temp = vssd.shadow(mnt)["shadows"][0]["id"]
    w.send_signal(signal.SIGCONT)
    time.sleep(0.5)
    w.kill()
    w.wait()
    vssd.vss("expose", sid, exp)
    vssd.vss("expose", temp, tmp)
    live = manifest(mnt)
    assert live != at_shadow and manifest(exp) == at_shadow

    vssd.restart()
    v = vssd.volume("r")
    assert v["mount"] == mnt and v["fstype"] == "ext4"
    assert os.path.ismount(mnt) and "noatime" in mount_options(mnt)
    assert manifest(mnt) == live
    assert exposed(vssd) == {sid: exp}
    assert "ro" in mount_options(exp)
    assert manifest(exp) == at_shadow
    # The non-persistent shadow is gone, its exposure forgotten, its
    # directory left as it was.
    assert temp not in [s["id"] for s in vssd.shadows()]
    assert not os.path.ismount(tmp) and os.path.isdir(tmp)
    assert "restore: 2 of 2 mounts and exposures brought back" in vssd.log()
    assert sorted(mounts_under(vssd.root)) == sorted(
        [os.path.join(vssd.run, "dev"), mnt, exp])
    wait_loops(vssd, [v["loop"], loop_of(exp)])

    # The filesystem is live again: write, shadow, and a second restart.
    with open(os.path.join(mnt, "after-restart"), "w") as f:
        f.write("x")
    vssd.restart()
    assert open(os.path.join(mnt, "after-restart")).read() == "x"
    assert exposed(vssd) == {sid: exp} and manifest(exp) == at_shadow

    # What is unmounted by hand stays unmounted.
    vssd.vss("unexpose", exp)
    vssd.vss("volume", "umount", "r")
    vssd.restart()
    assert vssd.volume("r")["mount"] is None and exposed(vssd) == {}
    assert mounts_under(vssd.root) == [os.path.join(vssd.run, "dev")]


FSCK = {"ext4": ["fsck.ext4", "-n", "-f"], "xfs": ["xfs_repair", "-n"],
        "btrfs": ["btrfs", "check", "--readonly"]}


@pytest.mark.parametrize("fstype", ["ext4", "xfs", "btrfs"])
def test_kill9_during_writes_brings_back_mounts(vssd, fstype):
    """A vssd killed with -9 while a writer is busy leaves filesystems on
    loop devices over its dead FUSE tree: the next one cleans them up,
    mounts the volume again (the filesystem recovers from its journal and
    is readable) and exposes the persistent shadow with what it held."""
    mnt, exp = os.path.join(vssd.root, "mnt"), os.path.join(vssd.root, "exp")
    tmp = os.path.join(vssd.root, "tmp")
    w = setup_volume(vssd, "k", mnt, 9, size="512M", fstype=fstype)
    at_shadow = manifest(mnt)
    sid = vssd.shadow(mnt, persistent=True)["shadows"][0]["id"]
    temp = vssd.shadow(mnt)["shadows"][0]["id"]
    w.send_signal(signal.SIGCONT)
    vssd.vss("expose", sid, exp)
    vssd.vss("expose", temp, tmp)
    time.sleep(0.7)
    assert w.poll() is None, "the writer died"
    vssd.kill9()
    w.kill()
    w.wait()
    assert os.path.exists(os.path.join(vssd.run, "vssd.sock"))
    assert mounts_under(vssd.root) and loops_under(vssd.root)

    vssd.start()
    assert "left by a previous vssd" in vssd.log()
    v = vssd.volume("k")
    assert v["mount"] == mnt and os.path.ismount(mnt)
    assert sorted(mounts_under(vssd.root)) == sorted(
        [os.path.join(vssd.run, "dev"), mnt, exp])
    wait_loops(vssd, [v["loop"], loop_of(exp)])
    assert exposed(vssd) == {sid: exp}
    assert manifest(exp) == at_shadow
    # The non-persistent shadow is gone with the restart: its exposure is
    # forgotten, its directory left as it was.
    assert "restore: shadow %s not exposed again at %s: the shadow no longer exists" % (
        temp, tmp) in vssd.log()
    assert not os.path.ismount(tmp) and os.path.isdir(tmp)
    # The volume's filesystem is readable and writable.
    assert len(manifest(mnt)) > 5
    with open(os.path.join(mnt, "after"), "w") as f:
        f.write("after")
    vssd.vss("unexpose", exp)
    vssd.vss("volume", "umount", "k")
    fsck = subprocess.run(FSCK[fstype] + [vssd.device("k")],
                          capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


@pytest.mark.parametrize("fstype", ["ext4", "xfs"])
def test_kill9_with_a_process_inside_the_mount(vssd, fstype):
    """A shell left in the mount point keeps the dead filesystem alive
    after a kill -9: the volume still mounts again (xfs, which refuses a
    second instance of one UUID, with nouuid) and the shell is left alone."""
    mnt = os.path.join(vssd.root, "mnt")
    vssd.create_volume("h", "512M")
    vssd.vss("volume", "mount", "h", mnt, "--mkfs", fstype)
    with open(os.path.join(mnt, "f"), "w") as f:
        f.write("synced")
    os.sync()
    holder = vssd.spawn(["sleep", "600"], cwd=mnt)
    vssd.kill9()
    vssd.start()
    assert vssd.volume("h")["mount"] == mnt
    assert open(os.path.join(mnt, "f")).read() == "synced"
    assert holder.poll() is None
    if fstype == "xfs":
        assert "volume h mounted with nouuid" in vssd.log()


def test_what_cannot_come_back_is_logged_and_forgotten(vssd):
    """The mount point is gone and something else is mounted where the
    shadow was exposed: vssd starts anyway, says why, and `vss volume list`
    tells the truth.  The tmpfs it did not make is left alone."""
    mnt, exp = os.path.join(vssd.root, "mnt"), os.path.join(vssd.root, "exp")
    w = setup_volume(vssd, "f", mnt, 3, size="128M")
    w.kill()
    w.wait()
    sid = vssd.shadow(mnt, persistent=True)["shadows"][0]["id"]
    vssd.vss("expose", sid, exp)
    assert vssd.stop() == 0
    os.rmdir(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "other", exp], check=True)
    with open(os.path.join(exp, "mine"), "w") as f:
        f.write("not vss's")

    vssd.start()
    log = vssd.log()
    assert "restore: volume f not mounted again at %s" % mnt in log
    assert "No such file or directory; forgotten" in log
    assert "restore: shadow %s not exposed again at %s: something is already " \
           "mounted at %s; forgotten" % (sid, exp, exp) in log
    assert vssd.volume("f")["mount"] is None
    r = vssd.vss("volume", "list")
    assert mnt not in r.stdout
    assert exposed(vssd) == {}
    assert open(os.path.join(exp, "mine")).read() == "not vss's"
    assert loops_under(vssd.root) == []

    # Forgotten: the next start does not try again.
    os.mkdir(mnt)
    vssd.restart()
    assert vssd.log().count("not mounted again at") == 1
    assert vssd.volume("f")["mount"] is None
    # And the volume mounts again on request.
    vssd.vss("volume", "mount", "f", mnt)
    assert os.path.isdir(os.path.join(mnt, "data"))


def test_btrfs_exposure_comes_back(daemon_factory):
    """A btrfs shadow is exposed by a bind mount: bound again after a clean
    restart, and kept (it outlives the process) after kill -9."""
    d = daemon_factory()
    bt = make_btrfs(d.root)
    with open(os.path.join(bt, "f"), "w") as f:
        f.write("old")
    sh = d.shadow(bt, persistent=True)["shadows"][0]
    with open(os.path.join(bt, "f"), "w") as f:
        f.write("new")
    exp = os.path.join(d.root, "exp")
    d.vss("expose", sh["id"], exp)
    d.restart()
    assert exposed(d) == {sh["id"]: exp}
    assert open(os.path.join(exp, "f")).read() == "old"
    d.kill9()
    d.start()
    assert "shadow %s is still exposed at %s" % (sh["id"], exp) in d.log()
    assert exposed(d) == {sh["id"]: exp}
    assert open(os.path.join(exp, "f")).read() == "old"
    d.vss("unexpose", exp)
    assert not os.path.ismount(exp)
    d.vss("delete", "shadows", "--all")


def test_systemd_unit_is_valid(tmp_path):
    """The unit `systemctl restart vssd` relies on (data/vssd.service.in) is
    one systemd accepts, with vssd stopped by SIGTERM to vssd alone."""
    import shutil
    from conftest import BUILD, VSSD
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of Debian's systemd package"
    unit = open(os.path.join(BUILD, "vssd.service")).read()
    assert "KillMode=process" in unit and "Restart=on-failure" in unit
    exec_line = next(l for l in unit.splitlines() if l.startswith("ExecStart="))
    unit = unit.replace(exec_line, "ExecStart=" + VSSD)
    path = tmp_path / "vssd.service"
    path.write_text(unit)
    r = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    # It warns (exit 0) about keys it cannot parse: none is accepted.
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr
    # The writers' units (an instance of the SQLite one names a database).
    for name, unit_name, binary in (
            ("vss-writer-hooks.service", "vss-writer-hooks.service", "vss-writer-hooks"),
            ("vss-writer-sqlite@.service", "vss-writer-sqlite@srv-app.db.service",
             "vss-writer-sqlite"),
            ("vss-writer-postgresql.service", "vss-writer-postgresql.service",
             "vss-writer-postgresql"),
            ("vss-writer-mariadb.service", "vss-writer-mariadb.service",
             "vss-writer-mariadb")):
        unit = open(os.path.join(BUILD, name)).read()
        assert "After=vssd.service" in unit
        exec_line = next(l for l in unit.splitlines() if l.startswith("ExecStart="))
        binary_path = os.path.abspath(os.path.join(BUILD, "src", binary, binary))
        path = tmp_path / unit_name
        path.write_text(unit.replace(exec_line, exec_line.replace(exec_line.split()[0],
                                                                  "ExecStart=" + binary_path)))
        r = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
        assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), \
            (unit_name, r.stdout + r.stderr)
