"""The control socket cannot be used to lock anyone out (doc/protocol.md,
"Limits"): a user holding connections, idle or sending a request one byte
at a time, cannot make root's or an operator's request fail; idle and slow
connections are closed within the bounds vssd was given, except those
doing legitimate work (a held set, a backup); replies larger than a frame
go through; what a user may read and what vssd writes leak nothing and
forge no lines."""
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import time

import test_writers
from test_roles import NOBODY, operators, reachable  # noqa: F401 (a fixture)
from test_writers import frame

MORE = 0x80000000

# Runs as another uid (setpriv): opens N connections to SOCKET and sends a
# status request on each, printing one JSON line per connection (its reply,
# or its error); with "slow", one more connection sends a request one byte
# every 0.3 s.  Then prints "held" and reports, one JSON line each, every
# connection vssd closes ("closed": index, "after": seconds since its last
# byte was sent, "first": since its last request's first byte, "msg": what
# vssd said before closing).  Exits at the end of its standard input.
HOLDER = r'''
import json, os, select, socket, struct, sys, threading, time
path, n, slow = sys.argv[1], int(sys.argv[2]), len(sys.argv) > 3
def frame(obj):
    b = json.dumps(obj).encode()
    return struct.pack(">I", len(b)) + b
def read_msg(s):
    buf = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            buf += c
            if len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                break
    except OSError as e:
        return {"oserror": e.errno}
    if len(buf) < 4:
        return None
    return json.loads(buf[4:4 + struct.unpack(">I", buf[:4])[0]])
socks, first, last, lock = {}, {}, {}, threading.Lock()
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(path)
    try:
        s.sendall(frame({"version": 1, "id": i, "op": "status"}))
    except OSError:
        pass
    r = read_msg(s)
    print(json.dumps({"conn": i, "reply": r}), flush=True)
    if r and r.get("ok"):
        socks[i] = s
        first[i] = last[i] = time.monotonic()
def loris():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    with lock:
        socks["slow"] = s
    data = frame({"version": 1, "id": 1, "op": "status"})
    for b in data:
        try:
            s.send(bytes([b]))
        except OSError:
            return
        with lock:
            last["slow"] = time.monotonic()
            first.setdefault("slow", last["slow"])
        time.sleep(0.3)
if slow:
    threading.Thread(target=loris, daemon=True).start()
    while "slow" not in last:
        time.sleep(0.05)
print("held", flush=True)
done = set()
while True:
    with lock:
        live = {k: s for k, s in socks.items() if k not in done}
    r, _, _ = select.select(list(live.values()) + [sys.stdin], [], [], 0.1)
    if sys.stdin in r and not os.read(0, 1):
        break
    for k, s in live.items():
        if s in r:
            s.setblocking(True)
            msg = read_msg(s)
            with lock:
                now = time.monotonic()
                after, since = now - last[k], now - first[k]
            done.add(k)
            print(json.dumps({"closed": k, "after": after, "first": since,
                              "msg": (msg or {}).get("error", {}).get("message")}), flush=True)
'''


def exact(s, n):
    b = s.recv(n, socket.MSG_WAITALL) if n else b""
    return b if len(b) == n else None


def recv_frames(s):
    """One message: (the parsed object, the payload length of each frame)."""
    payload, sizes = b"", []
    while True:
        hdr = exact(s, 4)
        if hdr is None:
            return None, sizes
        word = struct.unpack(">I", hdr)[0]
        sizes.append(word & ~MORE)
        payload += exact(s, word & ~MORE)
        if not word & MORE:
            return json.loads(payload), sizes


class Client(test_writers.Client):
    """test_writers' raw client, reading replies in several frames."""

    def call(self, op, **args):
        self.n += 1
        self.s.sendall(frame({"version": 1, "id": self.n, "op": op, "args": args}))
        return recv_frames(self.s)[0]

    def closed(self, timeout):
        """Whether vssd closes the connection within @timeout seconds."""
        self.s.settimeout(timeout)
        try:
            while self.s.recv(65536):
                pass
            return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True


class Holder:
    """HOLDER as uid @uid (with @groups): its connections and what it saw."""

    def __init__(self, d, uid, n, slow=False, groups=None):
        cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid] + (
            ["--groups=" + ",".join(map(str, groups))] if groups else ["--clear-groups"]) + [
            sys.executable, "-c", HOLDER, os.path.join(d.run, "vssd.sock"), str(n)] + (
            ["slow"] if slow else [])
        self.p = d.spawn(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.replies = []
        self.closed = {}
        while True:
            line = self.p.stdout.readline()
            assert line, "the holder died"
            if line.strip() == "held":
                break
            self.replies.append(json.loads(line)["reply"])
        self.t0 = time.monotonic()

    def admitted(self):
        return sum(1 for r in self.replies if r and r.get("ok"))

    def refusals(self):
        return [r["error"]["message"] for r in self.replies if r and not r.get("ok")]

    def wait_closed(self, count, timeout):
        """Reads close reports until @count have come or @timeout passed."""
        deadline = time.monotonic() + timeout
        os.set_blocking(self.p.stdout.fileno(), False)
        while len(self.closed) < count and time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                time.sleep(0.05)
                continue
            rec = json.loads(line)
            self.closed[rec["closed"]] = rec
        return self.closed

    def release(self):
        self.p.stdin.close()
        self.p.wait(10)


# ---- capacity: nobody locks root or the operators out ----

def test_users_cannot_lock_root_or_operators_out(daemon_factory, workdir, operators):
    # Users together may hold 16 - 8 = 8 connections, each uid 4.
    d = daemon_factory(args=["--operator-group", "users", "--max-connections", "16",
                             "--max-connections-per-user", "4",
                             "--reserved-connections", "8"])
    reachable(d, workdir)
    d.create_volume("v", "8M")
    # More than vssd ever served before (64), from one user.
    a = Holder(d, NOBODY, 70)
    assert a.admitted() == 4
    assert len(a.refusals()) == 66
    assert all("too many connections from uid %d" % NOBODY in m for m in a.refusals())
    b = Holder(d, NOBODY - 1, 6)
    assert b.admitted() == 4
    # The users' share is taken: a third user is refused, readably.
    r = d.vss("status", user=NOBODY - 2, check=False)
    assert r.returncode == 1, r.stderr
    assert "too many connections from users" in r.stderr, r.stderr
    # The user at its cap gets vssd's reason, not a broken pipe (exit 3).
    r = d.vss("status", user=NOBODY, check=False)
    assert r.returncode == 1, r.stderr
    assert "too many connections from uid %d" % NOBODY in r.stderr, r.stderr
    # Root and an operator are served all the same.
    d.vss("status")
    d.vss("create", "shadow", "--for", "v")
    r = d.vss("create", "shadow", "--for", "v", user=NOBODY - 3, groups=[operators],
              check=False)
    assert r.returncode == 0, r.stderr
    assert len(d.shadows()) == 2
    a.release()
    b.release()
    # Their connections are given back: the user is served again.
    deadline = time.time() + 10
    while d.vss("status", user=NOBODY, check=False).returncode != 0:
        assert time.time() < deadline, "the user's connections were not given back"
        time.sleep(0.1)


def test_operators_filling_every_connection_leave_root_its_own(daemon_factory, workdir,
                                                              operators):
    d = daemon_factory(args=["--operator-group", "users", "--max-connections", "4",
                             "--max-connections-per-user", "2",
                             "--reserved-connections", "2"])
    reachable(d, workdir)
    a = Holder(d, NOBODY, 2, groups=[operators])
    b = Holder(d, NOBODY - 1, 2, groups=[operators])
    assert a.admitted() + b.admitted() == 4
    r = d.vss("status", user=NOBODY - 2, groups=[operators], check=False)
    assert r.returncode == 1 and "vssd serves at most 4" in r.stderr, r.stderr
    # Root is served past the limit.
    d.vss("status")
    d.create_volume("v", "8M")
    a.release()
    b.release()


# ---- idle and slow connections ----

def test_idle_and_slow_connections_are_closed_in_time(daemon_factory, workdir):
    d = daemon_factory(args=["--idle-timeout", "1.5", "--frame-timeout", "2",
                             "--max-connections-per-user", "8"])
    reachable(d, workdir)
    d.create_volume("v", "8M")
    h = Holder(d, NOBODY, 6, slow=True)
    assert h.admitted() == 6
    # While the user holds them, root is served.
    d.vss("status")
    d.vss("create", "shadow", "--for", "v")
    closed = h.wait_closed(7, 15)
    h.release()
    assert len(closed) == 7, closed
    for k, rec in closed.items():
        if k == "slow":
            # Still sending (a byte every 0.3 s) when vssd gave up on it,
            # 2 s after its first byte.
            assert rec["after"] < 1.0, rec
            assert 1.9 <= rec["first"] < 5, rec
            assert "within 2000 ms" in (rec["msg"] or ""), rec
        else:
            # Idle 1.5 s: closed well before 5 s, and told why.
            assert 1.4 <= rec["after"] < 5, rec
            assert "no request for 1500 ms" in (rec["msg"] or ""), rec


def test_a_request_sent_slowly_is_bounded_from_its_first_byte(daemon_factory):
    d = daemon_factory(args=["--idle-timeout", "30", "--frame-timeout", "1"])
    c = Client(d)
    data = frame({"version": 1, "id": 1, "op": "status"})
    t0 = time.monotonic()
    closed_at = None
    for b in data:
        try:
            c.s.send(bytes([b]))
        except OSError:
            closed_at = time.monotonic()
            break
        time.sleep(0.2)
    if closed_at is None:
        assert c.closed(5)
        closed_at = time.monotonic()
    assert closed_at - t0 < 4, "a byte every 0.2 s kept the request going"
    c.close()
    d.vss("status")


def test_a_client_that_does_not_read_its_replies_is_closed(daemon_factory):
    d = daemon_factory(args=["--idle-timeout", "30", "--frame-timeout", "1"])
    c = Client(d)
    # Far more replies than the socket buffers hold, none of them read.
    reqs = b"".join(frame({"version": 1, "id": i, "op": "status"}) for i in range(3000))
    c.s.settimeout(5)
    try:
        c.s.sendall(reqs)
    except (socket.timeout, OSError):
        pass
    time.sleep(4)
    # vssd gave up on the reply it could not send: the replies end early.
    c.s.settimeout(5)
    got = 0
    try:
        while True:
            msg, _ = recv_frames(c.s)
            if msg is None:
                break
            got += 1
    except (socket.timeout, ConnectionResetError):
        pass
    c.close()
    assert got < 3000
    d.vss("status")


def test_held_sets_and_backups_outlive_the_idle_timeout(daemon_factory):
    d = daemon_factory(args=["--idle-timeout", "0.5"])
    d.create_volume("v", "8M")
    c = Client(d)
    r = c.call("shadow.create", targets=["v"], hold=True)
    assert r["ok"], r
    time.sleep(2)           # four idle timeouts
    r = c.call("set.complete", set=r["result"]["set"])
    assert r["ok"], r
    assert [s["state"] for s in d.shadows()] == ["valid"]
    # Once it holds nothing, the same connection is idle like any other.
    assert c.closed(5)
    c.close()
    b = Client(d)
    assert b.call("backup.begin", no_writers=True)["ok"]
    time.sleep(2)
    r = b.call("backup.status")
    assert r["ok"] and r["result"]["active"], r
    assert b.call("backup.abort")["ok"]
    assert b.closed(5)
    b.close()
    # An idle connection without either is closed.
    e = Client(d)
    assert e.call("status")["ok"]
    assert e.closed(5)
    e.close()


# ---- replies of any size ----

def test_replies_larger_than_a_frame(daemon_factory):
    d = daemon_factory(env={"VSS_TEST_PROTO_FRAME": "2048"})
    d.create_volume("v", "8M")
    made = [d.shadow("v")["shadows"][0]["id"] for _ in range(12)]
    # vss reassembles a reply sent in several frames.
    listed = d.shadows()
    assert sorted(s["id"] for s in listed) == sorted(made)
    # On the wire: frames of at most 2048 bytes, each but the last marked.
    c = Client(d)
    c.s.sendall(frame({"version": 1, "id": 5, "op": "shadow.list"}))
    msg, sizes = recv_frames(c.s)
    assert len(sizes) > 2 and max(sizes) <= 2048, sizes
    assert msg["ok"] and len(msg["result"]["shadows"]) == 12
    # A reply that fits one frame is one frame, as before.
    c.s.sendall(frame({"version": 1, "id": 6, "op": "status"}))
    msg, sizes = recv_frames(c.s)
    assert msg["ok"] and len(sizes) == 1
    # A request in several frames is taken (up to 1 MiB in all)...
    body = json.dumps({"version": 1, "id": 7, "op": "status",
                       "args": {"pad": "x" * 5000}}).encode()
    parts = [body[i:i + 1000] for i in range(0, len(body), 1000)]
    for i, p in enumerate(parts):
        more = MORE if i < len(parts) - 1 else 0
        c.s.sendall(struct.pack(">I", len(p) | more) + p)
    msg, _ = recv_frames(c.s)
    assert msg["ok"] and msg["id"] == 7
    # ...and one over 1 MiB in all is refused, and the connection closed.
    chunk = b" " * (512 << 10)
    c.s.sendall(struct.pack(">I", len(chunk) | MORE) + chunk)
    c.s.sendall(struct.pack(">I", len(chunk) | MORE) + chunk)
    c.s.sendall(struct.pack(">I", 10 | MORE))
    msg, _ = recv_frames(c.s)
    assert msg["error"]["code"] == "EMSGSIZE", msg
    assert c.closed(5)
    c.close()


# ---- what leaks to users, what forges lines ----

def test_writers_metadata_is_for_operators(daemon_factory, workdir, operators):
    d = daemon_factory(args=["--operator-group", "users"])
    reachable(d, workdir)
    script = r'''
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
b = json.dumps({"version": 1, "id": 1, "op": "writers.list",
                "args": json.loads(sys.argv[2])}).encode()
s.sendall(struct.pack(">I", len(b)) + b)
n = struct.unpack(">I", s.recv(4))[0]
buf = b""
while len(buf) < n:
    buf += s.recv(n - len(buf))
print(buf.decode())
'''

    def call(uid, groups, args):
        cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid] + (
            ["--groups=" + ",".join(map(str, groups))] if groups else ["--clear-groups"]) + [
            sys.executable, "-c", script, os.path.join(d.run, "vssd.sock"), json.dumps(args)]
        return json.loads(subprocess.run(cmd, capture_output=True, text=True,
                                         check=True, timeout=30).stdout)

    r = call(NOBODY, None, {"metadata": True})
    assert not r["ok"] and r["error"]["code"] == "EACCES", r
    assert "users" in r["error"]["message"]
    assert call(NOBODY, None, {})["ok"]
    assert call(NOBODY, [operators], {"metadata": True})["ok"]


def test_catalog_is_private_in_an_existing_state_dir(daemon_factory):
    d = daemon_factory(start=False)
    os.makedirs(d.state, mode=0o755)
    os.chmod(d.state, 0o755)
    old = os.umask(0o022)
    try:
        d.start()
    finally:
        os.umask(old)
    d.create_volume("v", "8M")      # the WAL and its index exist now
    names = ["catalog.db", "catalog.db-wal", "catalog.db-shm"]
    for name in names:
        mode = stat.S_IMODE(os.stat(os.path.join(d.state, name)).st_mode)
        assert mode & 0o077 == 0, "%s is %o" % (name, mode)
    # One an older vssd left readable is made private at start.
    d.stop()
    for name in names:
        p = os.path.join(d.state, name)
        if os.path.exists(p):
            os.chmod(p, 0o644)
    d.start()
    for name in names:
        p = os.path.join(d.state, name)
        if os.path.exists(p):
            assert stat.S_IMODE(os.stat(p).st_mode) & 0o077 == 0, name


def test_names_cannot_forge_lines(vssd):
    bad = "x\nvss: volume y created\r\x1b[2K"
    r = vssd.vss("volume", "create", bad, "--size", "8M", check=False)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1, r.stderr
    assert "\r" not in r.stderr and "\x1b" not in r.stderr, r.stderr
    assert "x\\nvss: volume y created\\r\\x1b[2K" in r.stderr, r.stderr
    # On the wire too: the message is one line for any client.
    c = Client(vssd)
    msg = c.call("volume.create", name=bad, size=8 << 20)
    c.close()
    assert not any(ch in msg["error"]["message"] for ch in "\n\r\x1b"), msg
    # vssd's log: a mount point's name stays on its own line, escaped.
    vssd.create_volume("v", "16M")
    mnt = os.path.join(vssd.root, "m\nvssd: forged\r\x1b[2K\u2028")
    os.mkdir(mnt)
    vssd.vss("volume", "mount", "v", mnt, "--mkfs", "ext4")
    vssd.vss("volume", "umount", "v")
    with open(vssd.log_path, "rb") as f:
        log = f.read().decode()
    assert "\r" not in log and "\x1b" not in log and "\u2028" not in log
    assert not any(l.startswith("vssd: forged") for l in log.split("\n")), log
    assert "m\\nvssd: forged\\r\\x1b[2K\\u2028" in log, log


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_memory_of_a_write_burst_is_given_back(vssd):
    # A burst of writes behind a persistent shadow (queued writes, 64 FUSE
    # workers) took vssd to ~150 MB and it kept 70-90 MB of it for good.
    mnt = os.path.join(vssd.root, "m")
    os.mkdir(mnt)
    vssd.create_volume("v", "1G")
    vssd.vss("volume", "mount", "v", mnt, "--mkfs", "ext4")
    vssd.vss("create", "shadow", "--for", "v", "--persistent")
    base = rss_kb(vssd.proc.pid)
    subprocess.run(["dd", "if=/dev/zero", "of=" + os.path.join(mnt, "f"), "bs=1M",
                    "count=384", "conv=fsync", "status=none"], check=True, timeout=300)
    subprocess.run(["fio", "--name=w", "--directory=" + mnt, "--size=64M",
                    "--rw=randwrite", "--bs=64k", "--direct=1", "--ioengine=libaio",
                    "--iodepth=64", "--numjobs=4", "--group_reporting",
                    "--output=/dev/null"], check=True, timeout=300)
    after = rss_kb(vssd.proc.pid)
    # Idle again: vssd gives back what the burst left in its heap.
    deadline = time.time() + 15
    while rss_kb(vssd.proc.pid) > base + (32 << 10) and time.time() < deadline:
        time.sleep(0.5)
    now = rss_kb(vssd.proc.pid)
    vssd.vss("volume", "umount", "v")
    assert now <= base + (32 << 10), "VmRSS %d kB at start, %d kB after the writes, " \
        "%d kB once idle" % (base, after, now)
