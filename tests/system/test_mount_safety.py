"""Nothing vss mounts lets anyone escalate or read what they could not:
shadows are nosuid, nodev and noexec through vss expose, vss
exec and --in-place (also after a restart, and for btrfs bind mounts);
mount targets are never reached through a symlink, even one swapped in
while vss volume mount runs; the system's, the state and the run
directories are refused; vss exec's exposures are private (a 0700
directory above the live mount still keeps others out); paths a user
names are looked up as that user (no telling "does not exist" from "you
may not reach it"), within a bounded time; and vss exec leaves no
directory behind.  Users are uid 65534 (nobody) and 65533 (no account
needed), the operator group is "users" (vssd --operator-group users).
"""
import ctypes
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

import conftest
from conftest import VSS, VSSD, mounts_under
from test_roles import operators  # noqa: F401 (a fixture)
from test_writers import Client

NOBODY = 65534
STRANGER = 65533


@pytest.fixture
def ops_vssd(daemon_factory, workdir, operators):
    d = daemon_factory(args=["--operator-group", "users"])
    for p in (workdir, d.root):
        os.chmod(p, 0o755)   # other users must reach the socket and the mounts
    return d


def as_user(uid, argv, groups=None, **kw):
    pre = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid]
    pre += ["--groups=" + ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return subprocess.run(pre + list(argv), capture_output=True, text=True, timeout=60, **kw)


def mount_options(path):
    """The per-mount options of the top mount at @path, or None."""
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                found = set(fields[5].split(","))
    return found


RAW_CALL = """
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(float(sys.argv[4]))
s.connect(sys.argv[1])
b = json.dumps({"version": 1, "id": 1, "op": sys.argv[2], "args": json.loads(sys.argv[3])})
s.sendall(struct.pack(">I", len(b)) + b.encode())
def exact(n):
    b = b""
    while len(b) < n:
        b += s.recv(n - len(b))
    return b
print(exact(struct.unpack(">I", exact(4))[0]).decode())
"""


def raw_call_as(d, uid, groups, op, args, timeout=60):
    """One request on the socket by uid @uid, without the CLI (which
    resolves paths itself); the reply."""
    r = as_user(uid, [sys.executable, "-c", RAW_CALL, os.path.join(d.run, "vssd.sock"), op,
                      json.dumps(args), str(timeout)], groups=groups)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def mount_points_of(source):
    with open("/proc/self/mountinfo") as f:
        out = []
        for line in f:
            left, right = line.split(" - ")
            if right.split()[1] == source:
                out.append(left.split()[4])
    return out


def plant(root):
    """A setuid-root copy of the shell and a device node (/dev/zero's) in
    @root; as nobody, the shell run with -p reports euid 0 where setuid
    works, and the node reads where devices work."""
    sh = os.path.join(root, "suidsh")
    shutil.copy(os.path.realpath("/bin/sh"), sh)
    os.chown(sh, 0, 0)
    os.chmod(sh, 0o4755)
    zero = os.path.join(root, "zero")
    os.mknod(zero, 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    return sh, zero


def euid_of_suidsh(sh):
    r = as_user(NOBODY, [sh, "-p", "-c", "id -u"])
    return r.stdout.strip() if r.returncode == 0 else "refused: " + r.stderr.strip()


def reads_device(zero):
    try:
        with open(zero, "rb") as f:
            return f.read(1) == b"\0"
    except PermissionError:
        return False


@pytest.fixture
def live(ops_vssd):
    """Volume v with ext4, mounted by root with default options at ROOT/live
    (reachable by anyone), holding the setuid shell, the device node and a
    file."""
    mnt = os.path.join(ops_vssd.root, "live")
    ops_vssd.create_volume("v", "64M")
    ops_vssd.vss("volume", "mount", "v", mnt, "--mkfs", "ext4")
    os.chmod(mnt, 0o755)
    sh, zero = plant(mnt)
    with open(os.path.join(mnt, "f"), "w") as f:
        f.write("data\n")
    # The reference: on the live volume both work (else the test shows nothing).
    assert euid_of_suidsh(sh) == "0"
    assert reads_device(zero)
    return mnt


# ---- 2: nosuid, nodev, noexec ----
def test_exposed_shadow_has_no_setuid_devices_or_programs(ops_vssd, live):
    vssd = ops_vssd
    sh = vssd.shadow("v", persistent=True)["shadows"][0]
    exp = os.path.join(vssd.root, "exp")
    vssd.vss("expose", sh["id"], exp)
    assert {"ro", "nosuid", "nodev", "noexec"} <= mount_options(exp)
    assert euid_of_suidsh(os.path.join(exp, "suidsh")).startswith("refused")
    assert not reads_device(os.path.join(exp, "zero"))
    # Brought back at start the same way.
    vssd.restart()
    assert vssd.shadows()[0]["exposed"] == exp
    assert {"ro", "nosuid", "nodev", "noexec"} <= mount_options(exp)
    vssd.vss("unexpose", exp)
    # Root may let programs run from it, never setuid: exec is root's alone.
    c = Client(vssd)
    try:
        r = c.call("shadow.expose", shadow=sh["id"], dir=exp, exec=True)
        assert r["ok"], r
        assert {"ro", "nosuid", "nodev"} <= mount_options(exp)
        assert "noexec" not in mount_options(exp)
        assert euid_of_suidsh(os.path.join(exp, "suidsh")) == str(NOBODY)
        assert not reads_device(os.path.join(exp, "zero"))
    finally:
        c.close()
    vssd.restart()
    assert "noexec" not in mount_options(exp) and "nosuid" in mount_options(exp)
    vssd.vss("unexpose", exp)


def test_operator_may_not_ask_for_exec(ops_vssd, live, operators):
    vssd = ops_vssd
    sh = vssd.shadow("v")["shadows"][0]
    exp = os.path.join(vssd.root, "opexp")
    os.mkdir(exp)
    os.chown(exp, NOBODY, NOBODY)
    reply = raw_call_as(vssd, NOBODY, [operators], "shadow.expose",
                        {"shadow": sh["id"], "dir": exp, "exec": True})
    assert not reply["ok"] and reply["error"]["code"] == "EACCES", reply
    assert not os.path.ismount(exp)


def test_exec_and_in_place_have_no_setuid_or_devices(ops_vssd, live):
    vssd = ops_vssd
    out = os.path.join(vssd.root, "out")
    os.mkdir(out)
    probe = os.path.join(out, "probe.sh")
    with open(probe, "w") as f:
        f.write('setpriv --reuid=%d --regid=%d --clear-groups "$1/suidsh" -p -c "id -u" '
                '> %s/suid 2>&1\nhead -c 1 "$1/zero" > %s/dev 2>/dev/null\nexit 0\n'
                % (NOBODY, NOBODY, out, out))
    for how, where in (([], '"$VSS_SHADOW_PATH_1"'), (["--in-place"], live)):
        r = vssd.vss("exec", "--for", live, *how, "--", "sh", "-c",
                     "sh %s %s" % (probe, where), check=False)
        assert r.returncode == 0, (how, r.stderr)
        with open(os.path.join(out, "suid")) as f:
            suid = f.read().strip()
        with open(os.path.join(out, "dev"), "rb") as f:
            dev = f.read()
        assert suid != "0" and "denied" in suid, (how, suid)
        assert dev == b"", how
        os.unlink(os.path.join(out, "suid"))
        os.unlink(os.path.join(out, "dev"))


def test_btrfs_bind_has_no_setuid_devices_or_programs(vssd):
    from test_providers import make_btrfs, subvolume
    bt = make_btrfs(vssd.root)
    sub = subvolume(os.path.join(bt, "data"))
    os.chmod(vssd.root, 0o755)
    os.chmod(os.path.dirname(vssd.root), 0o755)
    sh, zero = plant(sub)
    assert euid_of_suidsh(sh) == "0" and reads_device(zero)
    s = vssd.shadow(sub)["shadows"][0]
    assert s["provider"] == "btrfs"
    exp = os.path.join(vssd.root, "exp")
    vssd.vss("expose", s["id"], exp)
    assert {"ro", "nosuid", "nodev", "noexec"} <= mount_options(exp)
    assert euid_of_suidsh(os.path.join(exp, "suidsh")).startswith("refused")
    assert not reads_device(os.path.join(exp, "zero"))
    vssd.vss("unexpose", exp)


# ---- 5: symlinks, races, the deny-list ----
def protected(root):
    p = os.path.join(root, "protected")
    os.mkdir(p, 0o700)
    with open(os.path.join(p, "keep"), "w") as f:
        f.write("keep\n")
    return p


def test_expose_over_a_symlink_is_refused(ops_vssd, live, operators):
    vssd = ops_vssd
    prot = protected(vssd.root)
    sh = vssd.shadow("v")["shadows"][0]
    link = os.path.join(vssd.root, "link")
    os.symlink(prot, link)
    r = vssd.vss("expose", sh["id"], link, check=False)
    assert r.returncode == 1 and "symlink" in r.stderr, r.stderr
    r = vssd.vss("expose", sh["id"], os.path.join(link, "sub"), check=False)
    assert r.returncode == 1 and "symlink" in r.stderr, r.stderr
    # An operator, in a directory of its own, with a symlink it planted.
    mine = os.path.join(vssd.root, "mine")
    os.mkdir(mine)
    os.chown(mine, NOBODY, NOBODY)
    as_user(NOBODY, ["ln", "-s", prot, os.path.join(mine, "link")])
    r = vssd.vss("expose", sh["id"], os.path.join(mine, "link"), user=NOBODY,
                 groups=[operators], check=False)
    assert r.returncode == 1 and "symlink" in r.stderr, r.stderr
    # A volume too: root can be tricked by a symlink a user planted.
    vssd.create_volume("w", "32M")
    r = vssd.vss("volume", "mount", "w", os.path.join(mine, "link"), "--mkfs", "ext4",
                 check=False)
    assert r.returncode == 1 and "symlink" in r.stderr, r.stderr
    assert not os.path.ismount(prot) and os.listdir(prot) == ["keep"]
    assert vssd.shadows()[0]["exposed"] is None
    assert vssd.volume("w")["mount"] is None


def test_operator_exposes_only_in_its_own_directory(ops_vssd, live, operators):
    vssd = ops_vssd
    sh = vssd.shadow("v")["shadows"][0]
    rootdir = os.path.join(vssd.root, "rootdir")
    os.mkdir(rootdir, 0o777)     # writable, but not the operator's
    mine = os.path.join(vssd.root, "mine")
    os.mkdir(mine)
    os.chown(mine, NOBODY, NOBODY)

    def op(*args):
        return vssd.vss(*args, user=NOBODY, groups=[operators], check=False)

    r = op("expose", sh["id"], rootdir)
    assert r.returncode == 1 and "not yours" in r.stderr, r.stderr
    # Made as the operator, inside its directory; never as root elsewhere.
    r = op("expose", sh["id"], os.path.join(mine, "x"))
    assert r.returncode == 0, r.stderr
    assert os.path.ismount(os.path.join(mine, "x"))
    assert op("unexpose", os.path.join(mine, "x")).returncode == 0
    assert os.stat(os.path.join(mine, "x")).st_uid == NOBODY
    secret = os.path.join(vssd.root, "secret")
    os.mkdir(secret, 0o700)
    r = op("expose", sh["id"], os.path.join(secret, "x"))
    assert r.returncode == 1 and "may not reach" in r.stderr, r.stderr
    assert os.listdir(secret) == []


RENAME_EXCHANGE = 2


def test_mount_lands_where_recorded_while_the_path_is_swapped(vssd):
    """A thread swaps the mount point with a symlink to a protected directory
    (renameat2 RENAME_EXCHANGE) while vss volume mount runs."""
    libc = ctypes.CDLL(None, use_errno=True)
    prot = protected(vssd.root)
    race = os.path.join(vssd.root, "race")
    os.mkdir(race)
    a, b = os.path.join(race, "a"), os.path.join(race, "b")
    os.mkdir(a)
    os.symlink(prot, b)
    vssd.create_volume("v", "32M")
    vssd.vss("volume", "mount", "v", a, "--mkfs", "ext4")
    vssd.vss("volume", "umount", "v")
    landed = refused = 0
    for _ in range(30):
        stop = threading.Event()

        def swap():
            while not stop.is_set():
                libc.renameat2(-100, a.encode(), -100, b.encode(), RENAME_EXCHANGE)
        t = threading.Thread(target=swap)
        t.start()
        try:
            r = vssd.vss("volume", "mount", "v", a, check=False)
        finally:
            stop.set()
            t.join()
        assert not os.path.ismount(prot), "mounted over the symlink's target"
        assert os.listdir(prot) == ["keep"]
        vol = vssd.volume("v")
        real = b if os.path.islink(a) else a
        if r.returncode != 0:
            assert "symlink" in r.stderr, r.stderr
            assert vol["mount"] is None and not os.path.ismount(real)
            refused += 1
            continue
        landed += 1
        # Where vssd says it is, is where it is: the real directory.
        assert vol["mount"] == real and os.path.ismount(real)
        assert mount_points_of(vol["loop"]) == [real]
        vssd.vss("volume", "umount", "v")
        assert not os.path.ismount(real) and vssd.volume("v")["mount"] is None
    assert landed > 0, "never mounted: the race was not exercised (%d refused)" % refused
    final = os.path.join(vssd.root, "final")
    vssd.vss("volume", "mount", "v", final)
    assert vssd.volume("v")["mount"] == final


@pytest.fixture
def ns_vssd(daemon_factory, workdir, monkeypatch):
    """vssd in a mount namespace of its own: a mount the deny-list fails to
    stop lands only there, never over the host's /etc."""
    wrapper, inside = os.path.join(workdir, "vssd-ns"), os.path.join(workdir, "vssd-in-ns")
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\nexec unshare --mount --propagation private "%s" "$@"\n' % inside)
    # The namespace starts with a copy of every mount, other tests' too:
    # those under /tmp are let go at once there, so that it holds none of
    # their filesystems (and loop devices) while it lives.
    with open(inside, "w") as f:
        f.write('#!/bin/sh\n'
                'awk \'$5 ~ "^/tmp/" {print $5}\' /proc/self/mountinfo | sort -r |\n'
                'while read -r m; do umount -l "$m"; done\n'
                'exec "%s" "$@"\n' % VSSD)
    os.chmod(inside, 0o755)
    os.chmod(wrapper, 0o755)
    monkeypatch.setattr(conftest, "VSSD", wrapper)
    return daemon_factory()


def ns_mounts(d):
    with open("/proc/%d/mountinfo" % d.proc.pid) as f:
        return sorted(l.split()[4] for l in f)


def test_deny_list(ns_vssd):
    vssd = ns_vssd
    vssd.create_volume("v", "32M")
    vssd.vss("volume", "mount", "v", os.path.join(vssd.root, "mnt"), "--mkfs", "ext4")
    vssd.create_volume("w", "32M")
    sh = vssd.shadow("v")["shadows"][0]
    before = ns_mounts(vssd)
    system = [p for p in ("/", "/etc", "/usr/lib", "/proc/sys", "/sys/kernel", "/dev",
                          "/boot", "/bin", "/sbin", "/lib", "/var", "/run", "/tmp")
              if os.path.isdir(p) and not os.path.islink(p)]
    own = [vssd.state, os.path.join(vssd.state, "diff"), vssd.run,
           os.path.join(vssd.run, "dev"), os.path.join(vssd.run, "dev", "volumes")]
    for d in system + own:
        r = vssd.vss("expose", sh["id"], d, check=False)
        assert r.returncode == 1 and "refusing to mount on" in r.stderr, (d, r.stderr)
        r = vssd.vss("volume", "mount", "w", d, check=False)
        assert r.returncode == 1 and "refusing to mount on" in r.stderr, (d, r.stderr)
    # Nothing made either: the refusal comes before mkdir.
    for d in ("/proc/vss-test-never", os.path.join(vssd.run, "x")):
        r = vssd.vss("expose", sh["id"], d, check=False)
        assert r.returncode == 1 and "refusing to mount on" in r.stderr, (d, r.stderr)
        assert not os.path.exists(d)
    assert set(ns_mounts(vssd)) - set(before) == set()
    assert vssd.volume("w")["mount"] is None


# ---- 8: vss exec's exposures are private ----
READ_AS = ('setpriv --reuid=%d --regid=%d --clear-groups cat "$VSS_SHADOW_PATH_1/f" '
           '> %s/other 2>&1; echo $? > %s/other.rc; cat "$VSS_SHADOW_PATH_1/f" > %s/self; '
           'stat -c %%a:%%u "$(dirname "$VSS_SHADOW_PATH_1")" > %s/mode')


def volume_with_file(vssd, name, mnt, text):
    """Volume @name mounted at @mnt (its root 0755) holding "f" (0644)."""
    vssd.create_volume(name, "32M")
    vssd.vss("volume", "mount", name, mnt, "--mkfs", "ext4")
    os.chmod(mnt, 0o755)
    with open(os.path.join(mnt, "f"), "w") as f:
        f.write(text)
    os.chmod(os.path.join(mnt, "f"), 0o644)


def test_exec_exposure_keeps_a_0700_parent_closed_as_root(ops_vssd):
    vssd = ops_vssd
    secret = os.path.join(vssd.root, "secret")
    os.mkdir(secret, 0o700)
    mnt = os.path.join(secret, "mnt")
    volume_with_file(vssd, "v", mnt, "secret\n")
    assert as_user(NOBODY, ["cat", os.path.join(mnt, "f")]).returncode != 0
    out = os.path.join(vssd.root, "out")
    os.mkdir(out)
    vssd.vss("exec", "--for", mnt, "--", "sh", "-c",
             READ_AS % (NOBODY, NOBODY, out, out, out, out))
    with open(os.path.join(out, "other")) as f:
        other = f.read()
    assert "secret" not in other and open(os.path.join(out, "other.rc")).read() != "0\n"
    assert open(os.path.join(out, "self")).read() == "secret\n"
    assert open(os.path.join(out, "mode")).read().strip() == "700:0"
    assert os.listdir(os.path.join(vssd.run, "exec")) == []


def test_exec_exposure_as_an_operator(ops_vssd, operators):
    vssd = ops_vssd
    # A volume the operator cannot reach: no exposure of it for the operator.
    secret = os.path.join(vssd.root, "secret")
    os.mkdir(secret, 0o700)
    vssd.create_volume("hidden", "32M")
    vssd.vss("volume", "mount", "hidden", os.path.join(secret, "mnt"), "--mkfs", "ext4")
    r = vssd.vss("exec", "--for", "hidden", "--", "true", user=NOBODY, groups=[operators],
                 check=False)
    assert r.returncode == 1 and "may not reach" in r.stderr, r.stderr
    assert vssd.shadows() == [] and mounts_under(vssd.run + "/exec") == []
    # One it reaches through its group: readable by it, not by a stranger.
    grpdir = os.path.join(vssd.root, "grp")
    os.mkdir(grpdir)
    os.chown(grpdir, 0, operators)
    os.chmod(grpdir, 0o750)
    mnt = os.path.join(grpdir, "mnt")
    volume_with_file(vssd, "v", mnt, "team\n")
    assert as_user(STRANGER, ["cat", os.path.join(mnt, "f")]).returncode != 0
    out = os.path.join(vssd.root, "out")
    os.mkdir(out, 0o777)
    os.chmod(out, 0o777)
    go = os.path.join(out, "go")
    cmd = ('echo "$VSS_SHADOW_PATH_1" > %s/path; cat "$VSS_SHADOW_PATH_1/f" > %s/self; '
           'while [ ! -e %s ]; do sleep 0.05; done' % (out, out, go))
    p = vssd.spawn(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                    "--groups=%d" % operators, VSS, "--run-dir", vssd.run, "exec",
                    "--for", mnt, "--", "sh", "-c", cmd],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not os.path.exists(os.path.join(out, "self")):
            assert p.poll() is None, p.stderr.read()
            assert time.time() < deadline, "vss exec did not start the command"
            time.sleep(0.05)
        time.sleep(0.1)
        path = open(os.path.join(out, "path")).read().strip()
        assert open(os.path.join(out, "self")).read() == "team\n"
        st = os.stat(os.path.dirname(path))
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY, 0o700)
        r = as_user(STRANGER, ["cat", os.path.join(path, "f")])
        assert r.returncode != 0 and "team" not in r.stdout
    finally:
        open(go, "w").close()
    assert p.wait(60) == 0, p.stderr.read()
    assert os.listdir(os.path.join(vssd.run, "exec")) == []


# ---- 12: paths as the caller sees them ----
def test_paths_are_looked_up_as_the_caller(ops_vssd, live, operators):
    vssd = ops_vssd
    secret = os.path.join(vssd.root, "secret")
    os.mkdir(secret, 0o700)
    os.mkdir(os.path.join(secret, "exists"))
    there, missing = os.path.join(secret, "exists"), os.path.join(secret, "missing")
    lists = (["list", "shadows", "--for"], ["list", "shadowstorage", "--for"],
             ["list", "providers", "--for"])
    changes = (["create", "shadow", "--for"], ["delete", "shadows", "--all", "--for"])
    for ask, groups in [(a, None) for a in lists] + [(a, [operators])
                                                     for a in lists + changes]:
        a = vssd.vss(*ask, there, user=NOBODY, groups=groups, check=False)
        b = vssd.vss(*ask, missing, user=NOBODY, groups=groups, check=False)
        assert a.returncode == b.returncode == 1, (ask, a.stderr, b.stderr)
        assert a.stderr.replace(there, "P") == b.stderr.replace(missing, "P"), \
            (ask, a.stderr, b.stderr)
        assert "does not exist or you may not reach it" in a.stderr, a.stderr
    # What the caller reaches works as before.
    r = vssd.vss("list", "shadows", "--for", os.path.join(live, "f"), user=NOBODY,
                 check=False)
    assert r.returncode == 0, r.stderr
    assert vssd.shadows() == []


FUSE_HELLO = os.path.abspath(os.path.join(conftest.BUILD, "tests", "btrfs", "fuse_hello"))


@pytest.mark.skipif(not os.path.exists(FUSE_HELLO), reason="tests/btrfs/fuse_hello not built")
def test_a_lookup_that_hangs_is_cut_off(daemon_factory, workdir):
    """A user's path inside a FUSE filesystem whose server is stopped: the
    lookup as the user hangs; vssd kills it and goes on."""
    vssd = daemon_factory(env={"VSS_TEST_CALLER_TIMEOUT_MS": "1000"})
    for p in (workdir, vssd.root):
        os.chmod(p, 0o755)
    fm = os.path.join(vssd.root, "fuse")
    os.mkdir(fm)
    srv = vssd.spawn([FUSE_HELLO, "-f", "-s", "-o", "allow_other", fm])
    deadline = time.time() + 5
    while not os.path.ismount(fm):
        assert time.time() < deadline, "the FUSE helper did not mount"
        time.sleep(0.05)
    srv.send_signal(signal.SIGSTOP)
    try:
        # Without the CLI, which would look the path up itself (and hang).
        reply = raw_call_as(vssd, NOBODY, None, "shadow.list",
                            {"for": os.path.join(fm, "x")}, timeout=60)
        assert not reply["ok"], reply
        assert "took longer than 1000 ms" in reply["error"]["message"], reply
        assert vssd.vss("status", timeout=30).returncode == 0
    finally:
        srv.send_signal(signal.SIGCONT)


# ---- 12: no directory left behind ----
def exec_running(vssd, target):
    """A vss exec (in a session of its own) whose command is running."""
    marker = os.path.join(vssd.root, "running")
    if os.path.exists(marker):
        os.unlink(marker)
    p = vssd.spawn([VSS, "--run-dir", vssd.run, "exec", "--for", target, "--", "sh", "-c",
                    "touch %s; exec sleep 60" % marker], start_new_session=True)
    deadline = time.time() + 30
    while not os.path.exists(marker):
        assert time.time() < deadline and p.poll() is None, "vss exec did not start"
        time.sleep(0.05)
    return p


def test_exec_leaves_no_directory_behind(ops_vssd, live, operators):
    vssd = ops_vssd
    exec_dir = os.path.join(vssd.run, "exec")
    vssd.vss("exec", "--for", live, "--", "true")
    assert os.listdir(exec_dir) == []
    assert vssd.vss("exec", "--for", live, "--", "false", check=False).returncode == 1
    assert os.listdir(exec_dir) == []
    r = vssd.vss("exec", "--for", live, "--", "true", user=NOBODY, groups=[operators],
                 check=False)
    assert r.returncode == 0, r.stderr
    assert os.listdir(exec_dir) == []
    # vss exec killed while its command runs: vssd deletes the set and the directory.
    p = exec_running(vssd, live)
    assert len(os.listdir(exec_dir)) == 1
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.time() + 20
    while (vssd.shadows() or os.listdir(exec_dir)) and time.time() < deadline:
        time.sleep(0.05)
    assert vssd.shadows() == [] and os.listdir(exec_dir) == []
    # vssd killed while a vss exec runs: the next start sweeps what is left.
    p = exec_running(vssd, live)
    vssd.kill9()
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    vssd.start()
    assert os.listdir(exec_dir) == [] and mounts_under(exec_dir) == []
