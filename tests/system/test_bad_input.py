"""Bad input never crashes or wedges vssd, and gets the contract's exit
codes: 1 failed, 2 usage, 3 daemon not reachable."""
import json
import os
import socket
import struct

from conftest import connect, frame, recv_frame, VSS
import subprocess


def test_usage_errors_exit_2(vssd):
    cases = [
        ["volume", "create", "x", "--size", "12Q"],
        ["volume", "create", "x", "--size", "abc"],
        ["volume", "create", "x", "--size", "-5"],
        ["volume", "create", "x"],
        ["volume", "create", "x", "--size", "1M", "--block-size", "lots"],
        ["volume", "create", "x", "--size", "1M", "--block-size", "3K"],
        ["add", "shadowstorage", "--for", "x", "--maxsize", "5X"],
        ["add", "shadowstorage", "--for", "x", "--maxsize", "150%"],
        ["resize", "shadowstorage", "--for", "x"],
        ["frobnicate"],
        ["list", "nothing"],
        ["create", "shadow"],
        ["delete", "shadows"],
        ["delete", "shadows", "--for", "x"],
        ["list", "shadows", "--bogus"],
    ]
    for args in cases:
        r = vssd.vss(*args, check=False)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert r.stderr.startswith("vss: error: "), (args, r.stderr)
    assert vssd.vss("status").returncode == 0


def test_failures_exit_1(vssd):
    vssd.create_volume("v", "8M")
    cases = [
        (["volume", "create", "v", "--size", "8M"], "already exists"),
        (["volume", "delete", "nope"], "no volume"),
        (["create", "shadow", "--for", "nope"], "no volume"),
        (["create", "shadow", "--for", "v", "--for", "v"], "twice"),
        (["create", "shadow", "--for", vssd.root], "not inside a mounted volume"),
        (["create", "shadow", "--for", "/nonexistent/path"], ""),
        (["list", "shadows", "--for", "nope"], "no volume"),
        (["delete", "shadows", "--shadow", "0123456789"], "no shadow"),
        (["delete", "shadows", "--shadow", "0123"], "at least 8"),
        (["expose", "deadbeefdead", os.path.join(vssd.root, "e")], "no shadow"),
        (["unexpose", vssd.root], "no shadow copy is exposed"),
        (["volume", "create", "bad/name", "--size", "8M"], "invalid volume name"),
        (["volume", "create", "w", "--backing", "/nonexistent.img"], ""),
        (["volume", "umount", "v"], "not mounted"),
        (["volume", "mount", "v", os.path.join(vssd.root, "m")], "no ext4"),
        (["create", "shadow", "--for", "v", "--provider", "other"], "no provider"),
    ]
    for args, msg in cases:
        r = vssd.vss(*args, check=False)
        assert r.returncode == 1, (args, r.returncode, r.stderr)
        assert r.stderr.startswith("vss: error: ") and msg in r.stderr, (args, r.stderr)
    assert vssd.shadows() == []
    r = vssd.vss("list", "shadows")
    assert r.stdout.strip() == "No items found that satisfy the query."
    assert vssd.json("list", "shadows") == {"shadows": []}


def test_missing_daemon_exits_3(workdir):
    r = subprocess.run([VSS, "--run-dir", os.path.join(workdir, "none"), "status"],
                       capture_output=True, text=True)
    assert r.returncode == 3 and r.stderr.startswith("vss: error: ")
    r = subprocess.run([VSS, "list", "shadows", "--run-dir", os.path.join(workdir, "none")],
                       capture_output=True, text=True)
    assert r.returncode == 3


def test_garbage_on_the_socket(vssd):
    # Malformed JSON: an error reply, and the connection goes on.
    s = connect(vssd)
    s.sendall(frame(b"{this is not json"))
    r = recv_frame(s)
    assert r["ok"] is False and r["error"]["code"] == "EBADMSG"
    s.sendall(frame(b"[1, 2, 3]"))
    assert recv_frame(s)["error"]["code"] == "EBADMSG"
    s.sendall(frame({"version": 99, "id": 1, "op": "status"}))
    assert recv_frame(s)["error"]["code"] == "EPROTO"
    s.sendall(frame({"version": 1, "id": 2, "op": "no.such.op"}))
    assert recv_frame(s)["error"]["code"] == "ENOSYS"
    s.sendall(frame({"version": 1, "id": 3, "op": "volume.create", "args": {"name": 5}}))
    assert recv_frame(s)["error"]["code"] == "EINVAL"
    s.sendall(frame({"version": 1, "id": 4, "op": "volume.create", "args": []}))
    assert recv_frame(s)["error"]["code"] == "EINVAL"
    s.sendall(frame({"version": 1, "id": 5, "op": "status"}))
    r = recv_frame(s)
    assert r["ok"] is True and r["id"] == 5
    s.close()
    # Oversized: an error reply, then the connection is closed.
    s = connect(vssd)
    s.sendall(struct.pack(">I", 0xFFFFFFF0) + b"x" * 100)
    r = recv_frame(s)
    assert r["error"]["code"] == "EMSGSIZE"
    assert recv_frame(s) is None
    s.close()
    # Random bytes, a stalled half frame, an abrupt close: nothing wedges.
    s1 = connect(vssd)
    s1.sendall(os.urandom(4096))
    s2 = connect(vssd)
    s2.sendall(struct.pack(">I", 1000) + b"{")
    s3 = connect(vssd)
    s3.sendall(b"\x00\x00")
    s3.close()
    assert vssd.vss("status").returncode == 0
    vssd.create_volume("after", "8M")
    s1.close()
    s2.close()
    assert vssd.proc.poll() is None


def test_caller_without_rights(vssd, workdir):
    # The socket must be reachable for an unprivileged user to be refused
    # by vssd itself (the temporary directory is private by default).
    for p in (workdir, vssd.root):
        os.chmod(p, 0o755)
    vssd.create_volume("v", "8M")
    nobody = 65534
    r = vssd.vss("status", user=nobody, check=False)
    assert r.returncode == 0, r.stderr
    r = vssd.vss("list", "shadows", user=nobody, check=False)
    assert r.returncode == 0
    for args in (["volume", "create", "x", "--size", "8M"], ["create", "shadow", "--for", "v"],
                 ["volume", "delete", "v"], ["delete", "shadows", "--all"]):
        r = vssd.vss(*args, user=nobody, check=False)
        assert r.returncode == 1 and "permission denied" in r.stderr, (args, r.stderr)
    assert [v["name"] for v in vssd.json("volume", "list")["volumes"]] == ["v"]


def test_set_abandoned_by_its_requester_is_deleted(vssd):
    vssd.create_volume("v", "8M")
    s = connect(vssd)
    s.sendall(frame({"version": 1, "id": 1, "op": "shadow.create",
                     "args": {"targets": ["v"], "hold": True}}))
    r = recv_frame(s)
    assert r["ok"] and r["result"]["complete"] is False
    assert len(vssd.shadows()) == 1 and vssd.shadows()[0]["state"] == "in-progress"
    s.close()   # gone before set.complete
    for _ in range(100):
        if not vssd.shadows():
            break
        import time
        time.sleep(0.05)
    assert vssd.shadows() == []
    assert "requester went away" in vssd.log()


def test_names_cannot_drive_the_terminal(vssd):
    # A target is stored as its taker wrote it: an operator's path holding
    # terminal escapes must reach root's terminal as text, not as escapes.
    mnt = os.path.join(vssd.root, "mnt")
    vssd.create_volume("v", "64M")
    vssd.vss("volume", "mount", "v", mnt, "--mkfs", "ext4")
    evil = os.path.join(mnt, "a\x1b]0;owned\x07b\x1b[2Jc\rd")
    os.mkdir(evil)
    r = vssd.vss("create", "shadow", "--for", evil)
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "\r" not in r.stdout
    assert "\\x1b]0;owned\\x07b" in r.stdout, r.stdout
    r = vssd.vss("list", "providers", "--for", evil)
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "\r" not in r.stdout
    assert "\\x1b[2Jc\\rd" in r.stdout, r.stdout
    # In JSON the name is exact (JSON escapes it).
    assert [s["target"] for s in vssd.shadows()] == [evil]
