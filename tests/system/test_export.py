"""vss export: shadows served read-only over NBD by nbdkit, checked with
clients no one here wrote (libnbd's nbdinfo and nbdcopy).  A copy of an
export equals the volume's bytes at the shadow's instant (read from the
volume's own device right before the shadow, no writer running), also when
the export's block status is the changed-block map (its holes must still
be read); the map's data extents are exactly the blocks written between
the two shadows.  nbdkit ends with unexport, with its shadow and with
vssd (also after kill -9); an operator's socket is its own, and a TCP port is root's.
With --changed-since BASE the same map is the metadata context
qemu:dirty-bitmap:BASE (qemu-storage-daemon over nbdkit): its dirty extents
are the blocks written, byte for byte, and a client (libnbd's Python
binding, else qemu-io) that copies only them onto BASE's copy gets the
shadow; a base of another volume or a newer one is refused, and a
tampered bitmap file is written anew at the next start.
A live volume is exported too; root's exports come back after a restart
(a non-persistent shadow's goes with it, and the log says so); with TLS,
only a client with a certificate from the export's CA is served.  A port
listens on 127.0.0.1, TLS or not, or on the one address --listen names
(another local address is refused), a loopback one only without TLS.
"""
import json
import os
import random
import shutil
import socket
import subprocess
import time

import pytest

from test_roles import NOBODY, operators, reachable  # noqa: F401 (a fixture)

BS = 16384
SIZE = 8 << 20

pytestmark = pytest.mark.skipif(not (shutil.which("nbdkit") and shutil.which("nbdcopy")),
                                reason="nbdkit or nbdcopy (libnbd-bin) missing: "
                                       "scripts/setup.sh installs them")


def read_all(path, size=SIZE):
    with open(path, "rb") as f:
        return f.read(size)


def write_blocks(dev, rng, count):
    touched = set()
    fd = os.open(dev, os.O_WRONLY)
    try:
        for _ in range(count):
            b = rng.randrange(0, SIZE // BS)
            os.pwrite(fd, rng.randbytes(BS), b * BS)
            touched.add(b)
        os.fsync(fd)
    finally:
        os.close(fd)
    return touched


def uri(x):
    return "nbd+unix:///?socket=" + x["socket"]


def nbd_map(x):
    r = subprocess.run(["nbdinfo", "--map", "--json", uri(x)], capture_output=True,
                       text=True, timeout=30, check=True)
    return json.loads(r.stdout)


def merged(ranges):
    """Byte ranges (offset, length) merged into sorted, disjoint [start, end)."""
    out = []
    for off, length in sorted(ranges):
        if out and off <= out[-1][1]:
            out[-1][1] = max(out[-1][1], off + length)
        else:
            out.append([off, off + length])
    return out


def dirty(x, base, target=None):
    """The dirty extents of qemu:dirty-bitmap:BASE, as nbdinfo reads them."""
    ctx = "qemu:dirty-bitmap:" + base
    r = subprocess.run(["nbdinfo", "--map=" + ctx, "--json", target or uri(x)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return merged((e["offset"], e["length"]) for e in json.loads(r.stdout) if e["type"] & 1)


def apply_dirty(target, ctx, image):
    """An incremental client: reads only what @ctx's block status marks dirty
    and writes it into @image (a copy of the base); the ranges it applied."""
    done = []
    try:
        import nbd
    except ImportError:
        nbd = None
    with open(image, "r+b") as out:
        if nbd:
            h = nbd.NBD()
            h.add_meta_context(ctx)
            h.connect_uri(target)
            assert h.can_meta_context(ctx)
            size, off = h.get_size(), 0
            while off < size:
                found = []

                def seen(meta, offset, entries, err, found=found):
                    if meta == ctx:
                        found.extend(entries)
                    return 0
                h.block_status(min(size - off, 1 << 30), off, seen)
                for i in range(0, len(found), 2):
                    if found[i + 1] & 1:
                        out.seek(off)
                        out.write(h.pread(found[i], off))
                        done.append((off, found[i]))
                    off += found[i]
            h.shutdown()
        else:
            # qemu's own client reads what nbdinfo's map names (hex dump).
            path = target.split("socket=", 1)[1]
            for start, end in dirty(None, ctx.split(":", 2)[2], target):
                r = subprocess.run(["qemu-io", "-r", "-f", "raw", "-c",
                                    "read -v %d %d" % (start, end - start),
                                    "nbd:unix:" + path], capture_output=True, text=True,
                                   timeout=60, check=True)
                data = bytes.fromhex("".join(line.split(":", 1)[1][:49]
                                             for line in r.stdout.splitlines()
                                             if line[:8].isalnum() and ":" in line))
                assert len(data) == end - start
                out.seek(start)
                out.write(data)
                done.append((start, end - start))
    return merged(done)


def copy(x, dest, source=None):
    r = subprocess.run(["nbdcopy", source or uri(x), dest], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return read_all(dest)


def free_port():
    # Others test on this machine too: not NBD's 10809, a port free now.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connects(addr, port):
    """True if a TCP connection to @addr:@port is accepted, False if refused."""
    try:
        socket.create_connection((addr, port), timeout=10).close()
        return True
    except ConnectionRefusedError:
        return False


def running(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_export_copy_and_changed_map(vssd, workdir):
    # A volume on a block device, open O_EXCL by vssd while exports start.
    img = os.path.join(vssd.root, "blk.img")
    with open(img, "wb") as f:
        f.truncate(SIZE)
    loop = subprocess.run(["losetup", "-f", "--show", img], capture_output=True, text=True,
                          check=True).stdout.strip()
    vssd.vss("volume", "create", "blk", "--backing", loop)
    vssd.create_volume("raw", str(SIZE))
    dev = vssd.device("raw")
    rng = random.Random(15)
    write_blocks(dev, rng, 40)
    at_a = read_all(dev)
    a = vssd.shadow("raw")["shadows"][0]["id"]
    written = write_blocks(dev, rng, 12)
    at_b = read_all(dev)
    b = vssd.shadow("raw")["shadows"][0]["id"]
    write_blocks(dev, rng, 12)          # after b: in neither shadow

    xa = vssd.json("export", a)
    xb = vssd.json("export", b[:8], "--changed-since", a[:8])
    assert xa["running"] and xb["running"] and xb["changed_since"] == a
    assert os.stat(xa["socket"]).st_mode & 0o777 == 0o600
    listed = {x["shadow"]: x for x in vssd.json("list", "exports")["exports"]}
    assert set(listed) == {a, b}

    # Nothing of vssd's stays open in what runs nbdkit: once the volume is
    # deleted, its device is free.
    vssd.vss("volume", "delete", "blk")
    os.close(os.open(loop, os.O_RDONLY | os.O_EXCL))
    subprocess.run(["losetup", "-d", loop], check=True)

    # The copies equal each shadow's instant, the map's holes read as they are.
    assert copy(xa, os.path.join(workdir, "a.img")) == at_a
    assert copy(xb, os.path.join(workdir, "b.img")) == at_b
    # Read-only: a write through NBD is refused.
    r = subprocess.run(["nbdcopy", os.path.join(workdir, "a.img"), uri(xb)],
                       capture_output=True, timeout=60)
    assert r.returncode != 0

    # base:allocation of b's export: data exactly where blocks were written.
    data = set()
    for e in nbd_map(xb):
        assert e["offset"] % BS == 0 and e["length"] % BS == 0
        if e["type"] & 1 == 0:
            data.update(range(e["offset"] // BS, (e["offset"] + e["length"]) // BS))
        else:
            assert e["type"] & 2 == 0       # a hole, never promised to be zero
    assert data == written, (sorted(data), sorted(written))
    assert xb["changed_bytes"] == len(written) * BS
    print("export: %d of %d blocks changed; nbdcopy of both exports equal their instants"
          % (len(written), SIZE // BS))

    # Unexport, delete, stop: nbdkit goes each time, and so does its socket.
    vssd.vss("unexport", a)
    assert not running(xa["pid"]) and not os.path.exists(xa["socket"])
    r = vssd.vss("unexport", a, check=False)
    assert r.returncode == 1 and "not exported" in r.stderr
    vssd.vss("delete", "shadows", "--shadow", b)
    assert not running(xb["pid"]) and not os.path.exists(xb["socket"])
    assert vssd.json("list", "exports")["exports"] == []
    port = free_port()
    xa = vssd.json("export", a, "--port", str(port))
    assert xa["address"] == "127.0.0.1" and "every local user" in xa["warning"]
    subprocess.run(["nbdinfo", "--size", "nbd://127.0.0.1:%d" % port], check=True,
                   capture_output=True, timeout=30)
    vssd.stop()
    assert not running(xa["pid"])
    # kill -9 of vssd: its end of the keeper's pipe closes, nbdkit ends.
    vssd.start()
    x = vssd.json("export", vssd.shadow("raw")["shadows"][0]["id"])
    with open(os.path.join(os.path.dirname(x["socket"]), "pid")) as f:
        server = int(f.read())
    assert running(server)
    vssd.kill9()
    deadline = time.monotonic() + 10
    while running(server) or running(x["pid"]):
        assert time.monotonic() < deadline, "nbdkit outlived vssd"
        time.sleep(0.1)


def test_export_dirty_bitmap(vssd, workdir):
    """--changed-since BASE: qemu:dirty-bitmap:BASE is exactly the blocks
    written since BASE, base:allocation as before, and an incremental client
    gets the shadow from BASE's copy."""
    vssd.create_volume("raw", str(SIZE))
    dev = vssd.device("raw")
    rng = random.Random(19)
    write_blocks(dev, rng, 40)
    at_a = read_all(dev)
    a = vssd.shadow("raw", persistent=True)["shadows"][0]["id"]
    written = write_blocks(dev, rng, 14)
    at_b = read_all(dev)
    b = vssd.shadow("raw", persistent=True)["shadows"][0]["id"]
    write_blocks(dev, rng, 14)          # after b: in neither shadow
    want = merged((n * BS, BS) for n in written)

    xa = vssd.json("export", a)
    xb = vssd.json("export", b, "--changed-since", a[:8])
    ctx = "qemu:dirty-bitmap:" + a
    assert xb["metadata_context"] == ctx and xb["granularity"] == BS, xb
    assert os.stat(xb["socket"]).st_mode & 0o777 == 0o600
    # Only the socket is the client's: nbdkit's, behind qemu, is root's
    # (connecting takes write permission).
    inner = os.stat(os.path.join(os.path.dirname(xb["socket"]), "nbdkit.sock"))
    assert inner.st_uid == 0 and inner.st_mode & 0o022 == 0
    r = subprocess.run(["nbdinfo", "--list", "--json", uri(xb)], capture_output=True,
                       text=True, timeout=30, check=True)
    ctxs = json.loads(r.stdout)["exports"][0]["contexts"]
    assert set(ctxs) >= {"base:allocation", ctx}, ctxs
    assert "%s (changed since %s: %d bytes, the dirty extents of %s" % (
        uri(xb)[len("nbd+unix://"):], a, len(written) * BS, ctx) in \
        vssd.vss("list", "exports").stdout

    assert dirty(xb, a) == want, (dirty(xb, a), want)
    # base:allocation as before: data exactly where blocks were written.
    data = {n for e in nbd_map(xb) if e["type"] & 1 == 0
            for n in range(e["offset"] // BS, (e["offset"] + e["length"]) // BS)}
    assert data == written
    # A copy of BASE (nbdcopy of its export), then only the dirty extents.
    img = os.path.join(workdir, "incr.img")
    assert copy(xa, img) == at_a
    assert apply_dirty(uri(xb), ctx, img) == want
    assert read_all(img) == at_b
    assert copy(xb, os.path.join(workdir, "b.img")) == at_b
    print("dirty bitmap: %d of %d blocks dirty, incremental copy equals the shadow"
          % (len(written), SIZE // BS))

    # A base of another volume, or one newer than the shadow: refused.
    vssd.create_volume("other", str(SIZE))
    o = vssd.shadow("other")["shadows"][0]["id"]
    vssd.vss("unexport", a)
    for shadow, base, why in ((a, o, "different volumes"), (a, b, "must be older than")):
        r = vssd.vss("export", shadow, "--changed-since", base, check=False)
        assert r.returncode == 1 and why in r.stderr and "--changed-since " + base \
            in r.stderr, (base, r.stderr)
    assert [x["shadow"] for x in vssd.json("list", "exports")["exports"]] == [b]

    # A tampered bitmap file: kill -9 (the servers end, the file stays),
    # its first 8192 bits set; the next start writes it anew from the shadows.
    qcow2 = os.path.join(os.path.dirname(xb["socket"]), "changed.qcow2")
    with open(os.path.join(os.path.dirname(xb["socket"]), "qsd.pid")) as f:
        qsd = int(f.read())
    vssd.kill9()
    deadline = time.monotonic() + 10
    while running(qsd):
        assert time.monotonic() < deadline, "qemu-storage-daemon outlived vssd"
        time.sleep(0.1)
    with open(qcow2, "r+b") as f:
        # A valid image with other bits: the bitmaps extension names the
        # directory, its entry the table, whose first entry the bits.
        head = f.read(4096)
        ext = head.index(bytes.fromhex("23852875"))
        f.seek(int.from_bytes(head[ext + 24:ext + 32], "big"))
        f.seek(int.from_bytes(f.read(8), "big"))
        bits = int.from_bytes(f.read(8), "big")
        assert bits
        f.seek(bits)
        f.write(b"\xff" * 1024)
    vssd.start()
    x = vssd.json("list", "exports")["exports"][0]
    assert x["running"] and x["metadata_context"] == ctx
    assert dirty(x, a) == want
    r = subprocess.run(["qemu-img", "check", "-f", "qcow2", qcow2], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and "No errors" in r.stdout, r.stdout + r.stderr
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", qcow2],
                                     capture_output=True, text=True, timeout=30,
                                     check=True).stdout)
    assert [(m["name"], m["granularity"]) for m in
            info["format-specific"]["data"]["bitmaps"]] == [(a, BS)]

    # On a TCP port: 127.0.0.1 only without TLS, said so.
    vssd.vss("unexport", b)
    port = free_port()
    r = vssd.vss("export", b, "--changed-since", a, "--port", port)
    assert "bound to 127.0.0.1 without TLS" in r.stderr, r.stderr
    assert dirty(None, a, "nbd://127.0.0.1:%d" % port) == want
    assert not connects("127.0.0.2", port)


def test_export_roles(daemon_factory, workdir, operators):  # noqa: F811
    vssd = daemon_factory(args=["--operator-group", "users"])
    reachable(vssd, workdir)
    vssd.create_volume("v", "32M")
    # An operator reads only what it reaches: a mounted volume's shadows.
    vssd.vss("volume", "mount", "v", os.path.join(workdir, "m"), "--mkfs", "ext4")
    s = vssd.shadow("v")["shadows"][0]["id"]

    def op(*args):
        return vssd.vss(*args, user=NOBODY, groups=[operators], check=False)

    # Only root chooses where to listen.
    r = op("export", s, "--port", str(free_port()))
    assert r.returncode == 1 and "only root" in r.stderr, r.stderr
    r = op("export", s, "--socket", os.path.join(workdir, "s.sock"))
    assert r.returncode == 1 and "only root" in r.stderr, r.stderr
    # An operator who reaches the volume gets a socket only it may connect to.
    r = op("export", s, "--json")
    assert r.returncode == 0, r.stderr
    x = json.loads(r.stdout)
    st = os.stat(x["socket"])
    assert st.st_uid == NOBODY and st.st_mode & 0o777 == 0o600
    r = vssd.vss("unexport", s, user=12345, groups=[operators], check=False)
    assert r.returncode == 1 and "another user" in r.stderr, r.stderr
    r = op("unexport", s)
    assert r.returncode == 0, r.stderr
    assert not running(x["pid"])
    # With a changed-block map (qemu's socket): the operator's alone too.
    s2 = vssd.shadow("v")["shadows"][0]["id"]
    r = op("export", s2, "--changed-since", s, "--json")
    assert r.returncode == 0, r.stderr
    x = json.loads(r.stdout)
    st = os.stat(x["socket"])
    assert st.st_uid == NOBODY and st.st_mode & 0o777 == 0o600
    assert x["metadata_context"] == "qemu:dirty-bitmap:" + s
    subprocess.run(["nbdinfo", "--map=qemu:dirty-bitmap:" + s, uri(x)], check=True,
                   capture_output=True, timeout=30)
    assert op("unexport", s2).returncode == 0 and not running(x["pid"])
    # The live volume too, mounted where it reaches; not one that is not.
    r = op("export", "v", "--json")
    assert r.returncode == 0, r.stderr
    assert os.stat(json.loads(r.stdout)["socket"]).st_uid == NOBODY
    assert op("unexport", "v").returncode == 0
    vssd.create_volume("unmounted", "16M")
    r = op("export", "unmounted")
    assert r.returncode == 1 and "only root may export it" in r.stderr, r.stderr
    # A user who is not an operator exports nothing.
    r = vssd.vss("export", s, user=NOBODY, check=False)
    assert r.returncode == 1


def test_export_volume_and_restart(vssd, workdir):
    vssd.create_volume("raw", str(SIZE))
    dev = vssd.device("raw")
    rng = random.Random(16)
    write_blocks(dev, rng, 20)
    p = vssd.shadow("raw", persistent=True)["shadows"][0]["id"]
    written = write_blocks(dev, rng, 9)
    now = read_all(dev)
    # The live volume, with the blocks written since p as its map.
    xv = vssd.json("export", "raw", "--changed-since", p[:8])
    assert xv["volume"] == "raw" and xv["shadow"] is None and xv["changed_since"] == p
    assert copy(xv, os.path.join(workdir, "v.img")) == now
    data = {b for e in nbd_map(xv) if e["type"] & 1 == 0
            for b in range(e["offset"] // BS, (e["offset"] + e["length"]) // BS)}
    assert data == written
    assert dirty(xv, p) == merged((n * BS, BS) for n in written)
    r = vssd.vss("volume", "delete", "raw", check=False)
    assert r.returncode == 1 and "exported over NBD" in r.stderr, r.stderr
    r = vssd.vss("export", "nothing", check=False)
    assert r.returncode == 1 and 'no volume named "nothing"' in r.stderr, r.stderr
    xp = vssd.json("export", p)
    gone = vssd.shadow("raw")["shadows"][0]["id"]
    vssd.json("export", gone)
    # A restart serves root's exports again, at the same sockets; the
    # non-persistent shadow's goes with its shadow.
    vssd.restart()
    assert "the shadow copy is not persistent, it goes too" in vssd.log()
    listed = {x.get("shadow") or x["volume"]: x for x in vssd.json("list", "exports")["exports"]}
    assert set(listed) == {"raw", p} and all(x["running"] for x in listed.values())
    assert listed[p]["socket"] == xp["socket"] and listed["raw"]["changed_since"] == p
    assert copy(listed["raw"], os.path.join(workdir, "v2.img")) == now
    assert dirty(listed["raw"], p) == merged((n * BS, BS) for n in written)
    # kill -9 too; unexport then forgets them for good.
    vssd.kill9()
    vssd.start()
    assert len(vssd.json("list", "exports")["exports"]) == 2
    assert vssd.vss("unexport", "raw").stdout == "Volume raw no longer exported\n"
    vssd.vss("unexport", p[:8])
    vssd.restart()
    assert vssd.json("list", "exports")["exports"] == []


def make_pki(d):
    """A CA, a server certificate for localhost and a client certificate
    (openssl), as nbdkit and libnbd read them from a directory."""
    srv, cli, ca = (os.path.join(d, n) for n in ("srv", "cli", "ca"))
    for x in (srv, cli, ca):
        os.makedirs(x)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def ssl(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)

    ssl("req", "-x509", *ec, "-keyout", ca + "/key.pem", "-out", ca + "/ca-cert.pem",
        "-days", "2", "-subj", "/CN=vss-test-ca")
    for who, dirname, ext in (("server", srv, "subjectAltName=DNS:localhost\n"
                               "extendedKeyUsage=serverAuth\n"),
                              ("client", cli, "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(d, who + ".ext"), "w") as f:
            f.write(ext)
        ssl("req", *ec, "-keyout", "%s/%s-key.pem" % (dirname, who), "-out",
            "%s/%s.csr" % (d, who), "-subj", "/CN=" + who)
        ssl("x509", "-req", "-in", "%s/%s.csr" % (d, who), "-CA", ca + "/ca-cert.pem",
            "-CAkey", ca + "/key.pem", "-CAcreateserial", "-days", "2", "-out",
            "%s/%s-cert.pem" % (dirname, who), "-extfile", os.path.join(d, who + ".ext"))
        shutil.copy(ca + "/ca-cert.pem", dirname)
    return srv, cli, ca


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl missing")
def test_export_tls(vssd, workdir):
    srv, cli, ca = make_pki(os.path.join(workdir, "pki"))
    vssd.create_volume("raw", str(SIZE))
    write_blocks(vssd.device("raw"), random.Random(17), 10)
    s = vssd.shadow("raw")["shadows"][0]["id"]
    port = free_port()
    r = vssd.vss("export", s, "--port", port, "--tls-certificates", srv)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    # With TLS too, 127.0.0.1 only unless --listen says otherwise.
    assert "nbds://127.0.0.1:%d (TLS, clients certified by the CA in %s)" % (port, srv) \
        in r.stdout
    x = vssd.json("list", "exports")["exports"][0]
    assert x["tls_certificates"] == srv and x["address"] == "127.0.0.1"
    assert not connects("127.0.0.2", port)

    def size(uri):
        return subprocess.run(["nbdinfo", "--size", uri], capture_output=True, text=True,
                              timeout=30)

    r = size("nbds://localhost:%d/?tls-certificates=%s" % (port, cli))
    assert r.returncode == 0 and int(r.stdout) == SIZE, r.stderr
    # Without TLS, or without a client certificate from that CA: nothing.
    assert size("nbd://127.0.0.1:%d" % port).returncode != 0
    assert size("nbds://localhost:%d/?tls-certificates=%s" % (port, ca)).returncode != 0
    r = vssd.vss("export", s, "--tls-certificates", "relative", check=False)
    assert r.returncode == 1
    # A changed-block map (qemu serves it) under the same TLS rules.
    s2 = vssd.shadow("raw")["shadows"][0]["id"]
    port2 = free_port()
    r = vssd.vss("export", s2, "--changed-since", s, "--port", port2, "--tls-certificates",
                 srv)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run(["nbdinfo", "--map=qemu:dirty-bitmap:" + s, "--json",
                        "nbds://localhost:%d/?tls-certificates=%s" % (port2, cli)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and json.loads(r.stdout), r.stderr
    assert size("nbd://127.0.0.1:%d" % port2).returncode != 0
    assert size("nbds://localhost:%d/?tls-certificates=%s" % (port2, ca)).returncode != 0
    assert not connects("127.0.0.2", port2)
    vssd.vss("unexport", s2)
    # --listen any: every address, what another machine connects to.
    vssd.vss("unexport", s)
    r = vssd.vss("export", s, "--port", port, "--listen", "any", "--tls-certificates", srv)
    assert "nbds://HOST:%d (TLS" % port in r.stdout, r.stdout
    assert vssd.json("list", "exports")["exports"][0]["address"] == ""
    assert connects("127.0.0.2", port)
    r = size("nbds://localhost:%d/?tls-certificates=%s" % (port, cli))
    assert r.returncode == 0 and int(r.stdout) == SIZE, r.stderr


def test_export_listen(vssd, workdir):
    """--listen ADDR: the port listens there and nowhere else, also after a
    restart; without TLS only on a loopback address."""
    vssd.create_volume("raw", str(SIZE))
    dev = vssd.device("raw")
    write_blocks(dev, random.Random(18), 10)
    at = read_all(dev)
    s = vssd.shadow("raw", persistent=True)["shadows"][0]["id"]
    port = free_port()
    r = vssd.vss("export", s, "--port", port, "--listen", "127.0.0.2")
    assert "%s nbd://127.0.0.2:%d" % (s, port) in r.stdout, r.stdout
    assert r.stderr == ("vss: warning: bound to 127.0.0.2 without TLS: every local user "
                        "can read this shadow\n"), r.stderr
    assert vssd.json("list", "exports")["exports"][0]["address"] == "127.0.0.2"
    for _ in range(2):
        # Served on the address named; another local address is refused.
        assert not connects("127.0.0.1", port)
        assert copy({"socket": None}, os.path.join(workdir, "c.img"), "nbd://127.0.0.2:%d"
                    % port) == at
        vssd.restart()
    # IPv6's loopback, written as inet_ntop writes it.
    vssd.vss("unexport", s)
    port6 = free_port()
    r = vssd.json("export", s, "--port", port6, "--listen", "0:0::1")
    assert r["address"] == "::1"
    assert "nbd://[::1]:%d" % port6 in vssd.vss("list", "exports").stdout
    assert not connects("127.0.0.1", port6) and connects("::1", port6)
    vssd.vss("unexport", s)
    # Without TLS, nothing but a loopback address; no host names; a port first.
    for addr, why in (("0.0.0.0", "loopback address only"), ("any", "loopback address only"),
                      ("::", "loopback address only"), ("192.0.2.1", "loopback address only"),
                      ("localhost", "numeric IPv4 or IPv6"), ("127.1", "numeric IPv4")):
        r = vssd.vss("export", s, "--port", port, "--listen", addr, check=False)
        assert r.returncode == 1 and why in r.stderr, (addr, r.stderr)
    r = vssd.vss("export", s, "--listen", "127.0.0.1", check=False)
    assert r.returncode == 2 and "--listen ADDR goes with --port" in r.stderr, r.stderr
    assert vssd.json("list", "exports")["exports"] == []
