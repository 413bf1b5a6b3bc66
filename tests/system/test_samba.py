"""Samba's Previous Versions over vss (vss expose --gmt): the real smbd
from Debian's samba package on 127.0.0.1 and a private port, with its own
configuration, state, lock and cache directories under the test's
directory, shares a directory on a vss volume whose persistent shadows a
schedule takes; smbclient sees them as @GMT tokens, reads through them
exactly what the file held at each shadow, cannot write there, and a user
without rights on the live file has none on its versions."""
import os
import shutil
import socket
import subprocess
import time

import pytest

from test_schedule import NOBODY, mounted

SHARE = """[global]
  workgroup = VSSTEST
  server role = standalone server
  interfaces = 127.0.0.1
  bind interfaces only = yes
  smb ports = {port}
  disable netbios = yes
  lock directory = {t}/lock
  state directory = {t}/state
  cache directory = {t}/cache
  private dir = {t}/private
  pid directory = {t}/pid
  ncalrpc dir = {t}/ncalrpc
  log file = {t}/log.%m
  passdb backend = tdbsam:{t}/private/passdb.tdb
  load printers = no
  printcap name = /dev/null
  disable spoolss = yes
  map to guest = never

# What doc/cli.md ("Samba: Previous Versions") says works.
[data]
  path = {mnt}/share
  read only = no
  vfs objects = shadow_copy2
  shadow:mountpoint = {mnt}
  shadow:snapdir = .snapshots
  shadow:format = @GMT-%Y.%m.%d-%H.%M.%S
  shadow:sort = desc
  shadow:localtime = no
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def gmt(ns):
    return time.strftime("@GMT-%Y.%m.%d-%H.%M.%S", time.gmtime(ns // 10**9))


def shadow_copy2():
    """Where smbd loads vfs_shadow_copy2 from (Debian: samba-vfs-modules)."""
    out = subprocess.run(["smbd", "-b"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.strip().startswith("MODULESDIR:"):
            return os.path.join(line.split()[1], "vfs", "shadow_copy2.so")
    return None


@pytest.fixture
def smbd(vssd):
    if not shutil.which("smbd") or not shutil.which("smbclient"):
        pytest.skip("no smbd or smbclient (Debian: samba, smbclient)")
    if not os.path.exists(shadow_copy2() or "/nonexistent"):
        pytest.skip("smbd has no vfs_shadow_copy2 module (Debian: samba-vfs-modules)")
    # smbd serves nobody as nobody: the way to the share must be open.
    for p in (os.path.dirname(vssd.root), vssd.root):
        os.chmod(p, 0o755)
    t = os.path.join(vssd.root, "samba")
    for sub in ("lock", "state", "cache", "private", "pid", "ncalrpc"):
        os.makedirs(os.path.join(t, sub))
    mnt = mounted(vssd)
    conf = os.path.join(t, "smb.conf")
    port = free_port()
    with open(conf, "w") as f:
        f.write(SHARE.format(port=port, t=t, mnt=mnt))
    for user in ("root", "nobody"):
        subprocess.run(["smbpasswd", "-c", conf, "-s", "-a", user], input="pw\npw\n",
                       text=True, check=True, capture_output=True)
    with open(conf, "a") as f:
        f.write("  log level = 2\n" if os.environ.get("VSS_TEST_SMB_DEBUG") else "")
    log = open(os.path.join(t, "smbd.out"), "w")
    # A session of its own: smbd signals its whole process group as it ends.
    proc = vssd.spawn(["smbd", "--foreground", "--no-process-group", "--debug-stdout", "-s",
                       conf], stdout=log,
                      stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.time() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            assert proc.poll() is None and time.time() < deadline, open(
                os.path.join(t, "smbd.out")).read()
            time.sleep(0.1)

    def client(cmd, user="root"):
        client.logs = lambda: "".join(open(os.path.join(t, n), errors="replace").read()
                                      for n in sorted(os.listdir(t)) if n.startswith("log")
                                      or n == "smbd.out")[-6000:]
        return subprocess.run(["smbclient", "//127.0.0.1/data", "-p", str(port), "-s", conf,
                               "-U", user + "%pw", "-m", "SMB3", "-c", cmd],
                              capture_output=True, text=True, timeout=30)
    yield mnt, client
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def versions_for_samba(vssd, mnt):
    """A share directory on @mnt with f (0644) and secret (0600), and
    shadows of a schedule with changes between them (of three runs in one
    hour its retention keeps the first and the newest); returns the
    shadows left, their @GMT tokens and what f held at each."""
    share = os.path.join(mnt, "share")
    os.mkdir(share)
    os.chmod(mnt, 0o755)
    os.chmod(share, 0o777)
    f, secret = os.path.join(share, "f"), os.path.join(share, "secret")
    vssd.vss("expose", "--gmt", "v")
    sid = vssd.json("schedule", "add", "--for", mnt, "--every", "1h", "--keep", "hourly=24",
                    "--persistent", "--no-writers")["id"]
    held = {}
    for k in range(3):
        with open(f, "w") as x:
            x.write("version %d\n" % k * (k + 1))
        with open(secret, "w") as x:
            x.write("secret %d\n" % k)
        os.chmod(f, 0o644)
        os.chmod(secret, 0o600)
        held[vssd.json("schedule", "run", sid)["set"]] = open(f).read()
        time.sleep(1.05)        # one @GMT name a second
    with open(f, "w") as x:
        x.write("live\n")
    shadows = vssd.shadows()
    # Two, or three if the runs straddled an hour.
    assert len(shadows) in (2, 3) and all(s["schedule"] == sid for s in shadows)
    tokens = [gmt(s["created_ns"]) for s in shadows]
    assert sorted(os.listdir(os.path.join(mnt, ".snapshots"))) == sorted(tokens)
    assert all(s["exposed"] == os.path.join(mnt, ".snapshots", t)
               for s, t in zip(shadows, tokens))
    return shadows, tokens, [held[s["set"]] for s in shadows]


def test_snapshot_directory_follows_the_shadows(vssd, workdir):
    mnt = mounted(vssd)
    shadows, tokens, held = versions_for_samba(vssd, mnt)
    snap = os.path.join(mnt, ".snapshots")
    for t, want in zip(tokens, held):
        with open(os.path.join(snap, t, "share", "f")) as x:
            assert x.read() == want
        try:
            open(os.path.join(snap, t, "share", "g"), "w")
            raise AssertionError("a shadow exposed for Samba is writable")
        except OSError:
            pass
    st = os.stat(snap)
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o755
    # Non-persistent shadows are not exposed; a deleted one goes.
    vssd.shadow(mnt)
    assert len(os.listdir(snap)) == len(shadows)
    vssd.vss("delete", "shadows", "--shadow", shadows[0]["id"])
    assert sorted(os.listdir(snap)) == sorted(tokens[1:])
    # Off and on again; kept across a restart; a clean unmount.
    vssd.vss("unexpose", "--gmt", "v")
    assert not os.path.exists(snap)          # emptied, it goes too
    vssd.vss("expose", "--gmt", "v")
    assert sorted(os.listdir(snap)) == sorted(tokens[1:])
    vssd.restart()
    assert sorted(os.listdir(snap)) == sorted(tokens[1:])
    vssd.vss("volume", "umount", "v")
    assert not [m for m in open("/proc/self/mountinfo").read().split() if m.startswith(mnt)]
    r = vssd.vss("expose", "--gmt", "nosuch", check=False)
    assert r.returncode == 1 and "no volume" in r.stderr


def test_previous_versions_over_smb(vssd, smbd, workdir):
    mnt, client = smbd
    shadows, tokens, held = versions_for_samba(vssd, mnt)
    r = client("allinfo f")
    assert r.returncode == 0, r.stdout + r.stderr + client.logs()
    assert all(t in r.stdout for t in tokens), r.stdout
    for t, want in zip(tokens, held):
        out = os.path.join(workdir, "got-" + t)
        r = client("get %s/f %s" % (t, out))
        assert r.returncode == 0, r.stdout + r.stderr
        with open(out) as x:
            assert x.read() == want
    # Read-only over SMB.
    src = os.path.join(workdir, "new")
    with open(src, "w") as x:
        x.write("new")
    r = client("put %s %s/g" % (src, tokens[0]))
    assert "NT_STATUS_" in r.stdout + r.stderr, r.stdout + r.stderr
    assert not os.path.exists(os.path.join(mnt, ".snapshots", tokens[0], "share", "g"))
    # nobody reads f (0644) then and now, never secret (0600 root's).
    r = client("get %s/f %s" % (tokens[1], os.path.join(workdir, "n-f")), user="nobody")
    assert r.returncode == 0, r.stdout + r.stderr + client.logs()
    r = client("get %s/secret %s" % (tokens[1], os.path.join(workdir, "n-s")),
               user="nobody")
    assert "NT_STATUS_ACCESS_DENIED" in r.stdout + r.stderr, r.stdout + r.stderr
    assert not os.path.exists(os.path.join(workdir, "n-s"))
    # A shadow that goes is no longer offered.
    vssd.vss("delete", "shadows", "--shadow", shadows[0]["id"])
    r = client("allinfo f")
    assert tokens[0] not in r.stdout and tokens[1] in r.stdout, r.stdout
