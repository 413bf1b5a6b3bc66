"""A vss volume at boot: vssd as systemd starts it (Type=notify, ready only
once its volumes are served and mounted again) and a volume's /etc/fstab
line (fstype vss, mount(8)'s helper mount.vss), through the real systemd
fstab generator and a systemd of the test's own (systemd_ns.py), booted
twice: the first boot mounts the volume through the fstab line, the second
finds it mounted by vssd from its catalog.  A service ordered after the
mount reads a file of the volume each time (doc/service.md, "Moving an
existing filesystem under vss")."""
import os
import subprocess

import pytest

from conftest import BUILD, VSSD
import systemd_ns

MOUNT_VSS = os.path.abspath(os.path.join(BUILD, "src", "mount.vss", "mount.vss"))
GENERATOR = "/lib/systemd/system-generators/systemd-fstab-generator"
UNIT_IN = os.path.join(os.path.dirname(__file__), "..", "..", "data", "vssd.service.in")


def helper(d, *args):
    env = dict(os.environ, VSS_RUN_DIR=d.run)
    return subprocess.run([MOUNT_VSS] + [str(a) for a in args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_mount_helper(vssd, workdir):
    """mount.vss as mount(8) calls it: the options that are mount(8)'s and
    systemd's are not the filesystem's; a volume mounted at DIR already is
    success, elsewhere or unknown a failure saying why (exit 32)."""
    vssd.create_volume("data")
    a, b = os.path.join(workdir, "a"), os.path.join(workdir, "b")
    vssd.vss("volume", "mount", "data", a, "--mkfs", "ext4")
    vssd.vss("volume", "umount", "data")
    r = helper(vssd, "data", a, "-v", "-o",
               "defaults,nofail,x-systemd.requires=vssd.service,_netdev,noatime,"
               "commit=7,comment=x")
    assert r.returncode == 0, r.stderr
    assert 'options "noatime,commit=7"' in r.stderr
    v = vssd.volume("data")
    assert v["mount"] == a
    with open("/proc/self/mountinfo") as f:
        opts = [line.split() for line in f if line.split()[4] == a][0]
    assert "noatime" in opts[5] and "commit=7" in opts[-1], opts
    # Again (vssd mounted it at its start): nothing to do.
    r = helper(vssd, "data", a)
    assert r.returncode == 0, r.stderr
    # Elsewhere, or a volume that does not exist, or a crafted option.
    r = helper(vssd, "data", b)
    assert r.returncode == 32 and "volume data is already mounted at %s, not %s" % (a, b) \
        in r.stderr, r.stderr
    r = helper(vssd, "nosuch", b)
    assert r.returncode == 32 and 'no volume named "nosuch"' in r.stderr, r.stderr
    vssd.vss("volume", "umount", "data")
    r = helper(vssd, "data", b, "-o", "bind")
    assert r.returncode == 32 and "bind" in r.stderr, r.stderr
    r = helper(vssd, "data", "relative/dir")
    assert r.returncode == 1 and "absolute" in r.stderr
    r = helper(vssd, "data", b, "-N", "1")
    assert r.returncode == 1 and "namespace" in r.stderr
    assert vssd.volume("data")["mount"] is None
    # -f: nothing done.
    assert helper(vssd, "data", b, "-f").returncode == 0
    assert vssd.volume("data")["mount"] is None
    # vssd unreachable.
    vssd.stop()
    r = helper(vssd, "data", b)
    assert r.returncode == 32 and "is vssd running?" in r.stderr


def unit_name(path):
    return subprocess.run(["systemd-escape", "--path", "--suffix=mount", path],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(systemd_ns.available() is not None, reason=str(systemd_ns.available()))
@pytest.mark.skipif(not os.path.exists(GENERATOR), reason="no " + GENERATOR)
def test_fstab_line_at_boot(daemon_factory, workdir):
    d = daemon_factory("d")
    d.create_volume("data")
    mnt = os.path.join(workdir, "srv data")    # a space: fstab's \040
    d.vss("volume", "mount", "data", mnt, "--mkfs", "ext4")
    with open(os.path.join(mnt, "hello"), "w") as f:
        f.write("hello from the volume\n")
    d.vss("volume", "umount", "data")
    assert d.stop() == 0

    # The line a user writes, through systemd's own generator.
    fstab = os.path.join(workdir, "fstab")
    with open(fstab, "w") as f:
        f.write("# a vss volume\ndata %s vss nofail,x-systemd.requires=vssd.service,"
                "noatime 0 0\n" % mnt.replace(" ", "\\040"))
    gen = os.path.join(workdir, "gen")
    os.makedirs(gen)
    subprocess.run([GENERATOR, gen, gen, gen], check=True, capture_output=True,
                   env=dict(os.environ, SYSTEMD_FSTAB=fstab, SYSTEMD_LOG_LEVEL="warning"))
    name = unit_name(mnt)
    with open(os.path.join(gen, name)) as f:
        mount_unit = f.read()
    lines = mount_unit.splitlines()
    assert "What=data" in lines and "Type=vss" in lines, mount_unit
    assert "After=vssd.service" in lines and "Requires=vssd.service" in lines, mount_unit
    # nofail: not ordered before local-fs.target, which vssd comes after.
    assert "Before=local-fs.target" not in lines, mount_unit

    with open(UNIT_IN) as f:
        vssd_unit = f.read().replace("@SBINDIR@/vssd", "%s --state-dir %s --run-dir /run/vss"
                                     % (VSSD, d.state))
    vssd_log = os.path.join(workdir, "vssd-boot.log")
    vssd_unit = vssd_unit.replace("[Service]\n", "[Service]\nStandardOutput=append:%s\n"
                                  "StandardError=append:%s\n" % (vssd_log, vssd_log))
    vssd_unit = vssd_unit.replace("RequiresMountsFor=/var/lib/vss\n", "")
    assert "Type=notify" in vssd_unit
    seen = os.path.join(workdir, "app.log")
    app = ("[Unit]\nDefaultDependencies=no\nRequiresMountsFor=\"%s\"\n[Service]\nType=oneshot\n"
           "RemainAfterExit=yes\nExecStart=/bin/sh -c 'cat \"%s/hello\" >> %s'\n"
           % (mnt, mnt, seen))
    sbin = os.path.join(workdir, "sbin")
    os.makedirs(sbin)
    os.symlink(MOUNT_VSS, os.path.join(sbin, "mount.vss"))
    sd = systemd_ns.Systemd(workdir, {"vssd.service": vssd_unit, name: mount_unit,
                                      "app.service": app}, os.path.join(workdir, "sd.log"),
                            sbin=sbin)
    try:
        for boot in (1, 2):
            offset = os.path.getsize(vssd_log) if os.path.exists(vssd_log) else 0
            sd.start()
            state = {u: sd.run(["systemctl", "is-active", u], check=False).stdout.strip()
                     for u in ("vssd.service", name, "app.service")}
            with open(vssd_log) as f:
                log = f.read()[offset:]
            assert state == dict.fromkeys(state, "active"), (
                state, log, sd.run(["systemctl", "status", "--no-pager"] + list(state),
                                   check=False).stdout)
            with open(seen) as f:
                assert f.read() == "hello from the volume\n" * boot
            mounted = "volume data mounted at %s" % mnt
            assert log.count(mounted) == 1, log
            if boot == 1:
                # Not in vssd's catalog: mounted through the fstab line and
                # mount.vss, once vssd had said it was ready.
                assert log.index("started (version") < log.index(mounted), log
            findmnt = sd.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", mnt]).stdout.split()
            assert findmnt[0] == "ext4" and findmnt[1].startswith("/dev/loop"), findmnt
            # A clean shutdown: the service, the mount, then vssd.
            sd.run(["systemctl", "stop", "app.service", name, "vssd.service"], timeout=90)
            assert sd.run(["findmnt", mnt], check=False).returncode != 0
            sd.stop()
    finally:
        sd.stop()
