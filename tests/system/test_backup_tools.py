"""Backup programs on a busy volume, through vss exec --in-place: rsync,
tar, restic, borg, and rsync behind a remote shell (as BackupPC runs it on
a client).  Each records the live path, and what it restores is the volume
at the instant of the set, byte for byte, while a writer keeps changing the
live files during the backup.  Also: nested volumes, a command's leftover
processes, signals, and what --in-place refuses.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import time

import pytest

from conftest import VSS, mounts_under
from test_fs import busy_tree, manifest


@pytest.fixture
def busy(vssd):
    """A mounted ext4 volume whose data directory a writer keeps changing;
    the writer is stopped at a known state: (data, writer, its manifest)."""
    mnt = os.path.join(vssd.root, "mnt")
    vssd.create_volume("fs", "128M")
    vssd.vss("volume", "mount", "fs", mnt, "--mkfs", "ext4")
    data = os.path.join(mnt, "data")
    os.mkdir(data)
    w, m = busy_tree(vssd, data, 11)
    assert len(m) > 5
    return data, w, m


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, "%s -> %d\n%s%s" % (cmd, r.returncode, r.stdout, r.stderr)
    return r.stdout


def exports(env, prefix):
    """The variables of @env starting with @prefix, for a shell command line."""
    return " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(env.items())
                    if k.startswith(prefix))


def backup_in_place(vssd, data, w, tool_cmd):
    """vss exec --in-place around @tool_cmd (sh), the writer running again
    while the tool reads; afterwards the live data has changed."""
    cmd = "kill -CONT %d; sleep 0.3; %s" % (w.pid, tool_cmd)
    r = vssd.vss("exec", "--for", data, "--in-place", "--", "sh", "-c", cmd, check=False)
    assert r.returncode == 0, r.stdout + r.stderr + vssd.log()[-2000:]
    time.sleep(0.2)
    assert w.poll() is None
    w.kill()
    w.wait()
    assert vssd.shadows() == []
    assert mounts_under(os.path.join(vssd.run, "exec")) == []
    return r


TOOLS = ["rsync", "tar", "restic", "borg", "rsync-remote-shell"]


@pytest.mark.parametrize("tool", TOOLS)
def test_backup_tool_records_live_paths_and_reads_the_instant(vssd, busy, tool):
    data, w, m = busy
    root = vssd.root
    out = os.path.join(root, "out")
    restore = os.path.join(root, "restore")
    os.mkdir(restore)
    q = shlex.quote
    env = dict(os.environ)
    if tool == "rsync":
        # --relative keeps the path as given: the live one.
        backup_in_place(vssd, data, w, "rsync -a --relative %s %s/" % (q(data), q(out)))
        got = os.path.join(out, data.lstrip("/"))
    elif tool == "tar":
        tarball = os.path.join(root, "b.tar")
        backup_in_place(vssd, data, w, "tar -cf %s %s" % (q(tarball), q(data)))
        names = run(["tar", "-tf", tarball]).split()
        assert names and all(n.startswith(data.lstrip("/")) for n in names)
        run(["tar", "-xf", tarball, "-C", restore])
        got = os.path.join(restore, data.lstrip("/"))
    elif tool == "restic":
        env.update(RESTIC_PASSWORD="vss-test", RESTIC_REPOSITORY=os.path.join(root, "restic"),
                   RESTIC_CACHE_DIR=os.path.join(root, "restic-cache"))
        run(["restic", "init"], env=env)
        backup_in_place(vssd, data, w, "%s restic backup -q %s" % (exports(env, "RESTIC_"),
                                                                   q(data)))
        snaps = json.loads(run(["restic", "snapshots", "--json"], env=env))
        assert len(snaps) == 1 and snaps[0]["paths"] == [data]
        run(["restic", "restore", "latest", "--target", restore], env=env)
        # Incremental: the next runs find their parent (same paths), and
        # with nothing changed read no file again.
        again = "%s restic backup %s" % (exports(env, "RESTIC_"), q(data))
        vssd.vss("exec", "--for", data, "--in-place", "--", "sh", "-c", again)
        out2 = vssd.vss("exec", "--for", data, "--in-place", "--", "sh", "-c", again).stdout
        assert "using parent snapshot" in out2, out2
        assert re.search(r"Files:\s+0 new,\s+0 changed,\s+[1-9]", out2), out2
        got = os.path.join(restore, data.lstrip("/"))
    elif tool == "borg":
        repo = os.path.join(root, "borg")
        env.update(BORG_BASE_DIR=os.path.join(root, "borg-base"),
                   BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
                   BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")
        run(["borg", "init", "-e", "none", repo], env=env)
        backup_in_place(vssd, data, w, "%s borg create %s::a %s" % (exports(env, "BORG_"),
                                                                    q(repo), q(data)))
        paths = [json.loads(l)["path"] for l in
                 run(["borg", "list", "--json-lines", repo + "::a"], env=env).splitlines()]
        assert paths and all(p.startswith(data.lstrip("/")) for p in paths)
        # Incremental: with nothing changed the files cache (path, inode,
        # ctime) knows every file, so none is read again.  borg never
        # caches the files with the newest ctime: make that one file.
        time.sleep(0.1)
        with open(os.path.join(data, "newest"), "w") as f:
            f.write("n")
        for name, listing in (("b", ""), ("c", "--list --filter=AME")):
            out2 = vssd.vss("exec", "--for", data, "--in-place", "--", "sh", "-c",
                            "%s borg create %s %s::%s %s 2>&1" % (
                                exports(env, "BORG_"), listing, q(repo), name,
                                q(data))).stdout
        # (every file would be read again, were the paths new)
        assert out2.split() in ([], ["A", os.path.join(data, "newest")]), out2
        assert len(paths) > 10
        run(["borg", "delete", repo + "::b"], env=env)
        run(["borg", "delete", repo + "::c"], env=env)
        run(["borg", "extract", repo + "::a"], env=env, cwd=restore)
        got = os.path.join(restore, data.lstrip("/"))
    else:
        # BackupPC's rsync method runs "ssh -l root HOST RsyncClientPath
        # --server --sender ..." on the client; RsyncClientPath set to
        # "vss exec --for SHARE --in-place -- rsync" backs the share up from
        # a shadow.  Here the remote shell is sh, as ssh would run it.
        rsh = os.path.join(root, "fake-ssh")
        with open(rsh, "w") as f:
            f.write('#!/bin/sh\nshift\nexec sh -c "$*"\n')
        os.chmod(rsh, 0o755)
        client = "%s --run-dir %s exec --for %s --in-place -- sh -c %s rsync" % (
            q(VSS), q(vssd.run), q(data),
            q('kill -CONT %d; sleep 0.3; exec rsync "$@"' % w.pid))
        r = subprocess.run(["rsync", "-a", "-e", rsh, "--rsync-path", client,
                            "client:%s/" % data, out + "/"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr + vssd.log()[-2000:]
        time.sleep(0.2)
        w.kill()
        w.wait()
        assert vssd.shadows() == []
        got = out
    assert manifest(got) == m
    assert manifest(data) != m   # the live files did change meanwhile



def test_in_place_nested_volumes_live_members_and_leftovers(vssd):
    """Two volumes, one mounted inside the other, and a live directory:
    inside the command each volume shows its own shadow (read-only), the
    live member stays live, the system's pids are the usual ones, and what
    the command leaves running is killed when it exits."""
    root = vssd.root
    mnt, inner = os.path.join(root, "mnt"), os.path.join(root, "mnt", "inner")
    vssd.create_volume("outer", "96M")
    vssd.vss("volume", "mount", "outer", mnt, "--mkfs", "ext4")
    os.mkdir(inner)
    vssd.create_volume("inner", "96M")
    vssd.vss("volume", "mount", "inner", inner, "--mkfs", "ext4")
    for path, text in ((os.path.join(mnt, "a"), "outer-old"),
                       (os.path.join(inner, "b"), "inner-old")):
        with open(path, "w") as f:
            f.write(text)
    live = os.path.join(root, "live")
    os.mkdir(live)
    # The live volumes stay reachable through binds made before the set.
    alt, alt_in = os.path.join(root, "alt"), os.path.join(root, "alt-in")
    for src, dst in ((mnt, alt), (inner, alt_in)):
        os.mkdir(dst)
        run(["mount", "--bind", src, dst])
    left = os.path.join(live, "left.pid")
    cmd = ("set -e; echo outer-new > %(alt)s/a; echo inner-new > %(alt_in)s/b; "
           'test "$(cat %(mnt)s/a)" = outer-old; test "$(cat %(inner)s/b)" = inner-old; '
           "! touch %(mnt)s/c 2>/dev/null; ! touch %(inner)s/c 2>/dev/null; "
           "echo w > %(live)s/w; kill -0 %(me)d; test \"$VSS_IN_PLACE\" = 1; "
           "setsid sleep 300 < /dev/null > /dev/null 2>&1 & echo $! > %(left)s"
           % dict(alt=alt, alt_in=alt_in, mnt=mnt, inner=inner, live=live,
                  me=os.getpid(), left=left))
    # Nested targets in either order, a volume by name, the live member.
    r = vssd.vss("exec", "--for", inner, "--for", "outer", "--for", live, "--allow-live",
                 "--in-place", "--", "sh", "-c", cmd, check=False)
    assert r.returncode == 0, r.stdout + r.stderr + vssd.log()[-2000:]
    with open(os.path.join(mnt, "a")) as f:
        assert f.read() == "outer-new\n"
    with open(os.path.join(inner, "b")) as f:
        assert f.read() == "inner-new\n"
    assert os.path.exists(os.path.join(live, "w"))
    with open(left) as f:
        pid = int(f.read())
    deadline = time.time() + 5
    while os.path.exists("/proc/%d" % pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not os.path.exists("/proc/%d" % pid), "the leftover sleep still runs"
    assert vssd.shadows() == []
    assert mounts_under(os.path.join(vssd.run, "exec")) == []
    for m in (alt_in, alt):
        run(["umount", m])


def test_in_place_interrupted(vssd, busy):
    """^C at the terminal (SIGINT to the process group): the command dies,
    vss exec aborts the backup and leaves no shadow, mount or process."""
    data, w, _ = busy
    ready = os.path.join(vssd.root, "ready")
    p = subprocess.Popen([VSS, "--run-dir", vssd.run, "exec", "--for", data, "--in-place",
                          "--", "sh", "-c", "touch %s; exec sleep 300" % shlex.quote(ready)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    vssd.helpers.append(p)
    deadline = time.time() + 30
    while not os.path.exists(ready) and time.time() < deadline:
        assert p.poll() is None, p.stderr.read()
        time.sleep(0.05)
    time.sleep(0.2)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 128 + signal.SIGINT, err
    assert vssd.shadows() == []
    assert mounts_under(os.path.join(vssd.run, "exec")) == []
    assert subprocess.run(["pgrep", "-s", str(p.pid)], capture_output=True).stdout == b""


def callers_dispositions():
    """The caller of vss exec in the test below: SIGHUP ignored (as under
    nohup), the others it checks at their default whatever the test runner
    was started with (a shell's background job ignores SIGINT and
    SIGQUIT)."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGPIPE):
        signal.signal(s, signal.SIG_DFL)


def test_in_place_command_gets_the_callers_signal_dispositions(vssd, busy):
    """Under nohup the command still ignores SIGHUP; SIGINT and SIGTERM
    (which vss exec ignores while it waits) are the caller's (default)."""
    data, w, _ = busy
    w.kill()
    r = subprocess.run([VSS, "--run-dir", vssd.run, "exec", "--for", data, "--in-place",
                        "--", "sh", "-c", "grep SigIgn /proc/$$/status"],
                       capture_output=True, text=True, preexec_fn=callers_dispositions)
    assert r.returncode == 0, r.stderr
    ign = int(r.stdout.split()[1], 16)
    bit = lambda s: (ign >> (s - 1)) & 1
    assert bit(signal.SIGHUP) == 1
    assert bit(signal.SIGINT) == 0 and bit(signal.SIGTERM) == 0
    assert bit(signal.SIGQUIT) == 0 and bit(signal.SIGPIPE) == 0
