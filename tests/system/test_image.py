"""Image backups, changed-block tracking that outlives shadows, and revert.

Image chains on a raw volume with random writes: each restored image equals
the volume at its backup's instant byte for byte (the reference is a hash of
the volume's backing file, read without the engine, right before each
backup, no writer running); an incremental reads only the blocks written
since its base; tracking survives the base shadow's deletion (every backup
deletes its set) and a vssd restart, and after kill -9 or the loss of the
diff area that held it the next incremental reads everything and says so.  vss diff lists what was written; vss revert
rolls a mounted-then-unmounted ext4 volume back to a shadow, byte for byte,
writing back only the blocks changed since it.
"""
import os
import random
import subprocess
import time

import pytest

from conftest import connect, ext4_groups, frame, recv_frame, sha256_file

BS = 16384


def origin_hash(d, name):
    v = d.volume(name)
    return sha256_file(v["backing"], v["size"])


def write_blocks(dev, size, rng, count):
    """Random bytes over @count random 16K blocks (some unaligned, some
    spanning two), synced; returns the set of blocks touched."""
    touched = set()
    fd = os.open(dev, os.O_WRONLY)
    try:
        for _ in range(count):
            length = rng.choice([512, 4096, BS, BS + 1000])
            off = rng.randrange(0, size - length)
            os.pwrite(fd, rng.randbytes(length), off)
            touched.update(range(off // BS, (off + length - 1) // BS + 1))
        os.fsync(fd)
    finally:
        os.close(fd)
    return touched


def call(d, op, **args):
    """One request on the control protocol (what a requester library does)."""
    s = connect(d)
    try:
        s.sendall(frame({"version": 1, "id": 1, "op": op, "args": args}))
        return recv_frame(s)
    finally:
        s.close()


def image_backup(d, repo, typ, *more):
    out = d.json("backup", "create", "--image", "--to", repo, "--for", "raw", "--type", typ,
                 "--no-writers", *more)
    (b,) = out["backups"]
    return b


def restore_to(d, repo, bid, to):
    d.vss("restore", "--from", repo, bid, "--to", to)


def test_image_chain_tracking_restart_and_kill(vssd, workdir):
    size = 32 << 20
    vssd.create_volume("raw", str(size))
    dev = vssd.device("raw")
    repo = os.path.join(workdir, "repo")
    rng = random.Random(42)
    write_blocks(dev, size, rng, 200)
    refs = {}

    # An image read live is refused, saying why, and nothing is made.
    r = vssd.vss("backup", "create", "--image", "--to", repo, "--for", "raw",
                 "--no-writers", "--allow-live", check=False)
    assert r.returncode == 2 and "not an image of one instant" in r.stderr, r.stderr
    assert vssd.shadows() == [] and not os.path.exists(repo)

    full = image_backup(vssd, repo, "full")
    refs[full["id"]] = origin_hash(vssd, "raw")
    assert full["type"] == "full" and full["bytes_read"] == size
    # The set is gone; its tracking point is kept as a bookmark.
    assert vssd.shadows() == []
    (bm,) = vssd.json("list", "bookmarks")["bookmarks"]
    assert bm["id"] == full["shadow"] and bm["state"] == "tracking" and not bm["shadow"]

    # Incrementals read only what was written, through the deletion of
    # the base shadow and a clean restart of vssd.
    chain = [full]
    for step in range(3):
        touched = write_blocks(vssd.device("raw"), size, rng, 12)
        if step == 1:
            vssd.restart()
        diff = vssd.json("diff", chain[-1]["shadow"][:8], "now")
        listed = {o // BS + k for o, n in diff["extents"] for k in range((n + BS - 1) // BS)}
        assert listed == touched and diff["bookmark"]
        ref = origin_hash(vssd, "raw")
        inc = image_backup(vssd, repo, "incremental")
        refs[inc["id"]] = ref
        assert inc["type"] == "incremental" and inc["base"] == chain[-1]["id"], inc
        assert inc["bytes_read"] == len(touched) * BS, (inc, sorted(touched))
        assert inc["bytes_read"] <= 0.02 * size
        chain.append(inc)
    # The repository keeps the tracking it needs: the newest backup's and
    # the newest full's; the others were dropped.
    kept = {b["id"] for b in vssd.json("list", "bookmarks")["bookmarks"]}
    assert kept == {chain[-1]["shadow"], full["shadow"]}

    # A differential: since the full, through every write since.
    write_blocks(vssd.device("raw"), size, rng, 5)
    ref = origin_hash(vssd, "raw")
    dif = image_backup(vssd, repo, "differential")
    refs[dif["id"]] = ref
    assert dif["type"] == "differential" and dif["base"] == full["id"]
    assert dif["bytes_read"] < size // 4

    # kill -9 after writes no shadow covered: the tracking may have missed
    # them, so the next incremental reads everything and says so.
    write_blocks(vssd.device("raw"), size, rng, 7)
    vssd.kill9()
    vssd.start()
    ref = origin_hash(vssd, "raw")
    out = vssd.vss("backup", "create", "--image", "--to", repo, "--for", "raw", "--type",
                   "incremental", "--no-writers").stdout
    assert "made full" in out and "not closed cleanly" in out, out
    last = vssd.json("backup", "list", "--in", repo)["backups"][-1]
    refs[last["id"]] = ref
    assert last["type"] == "full"
    assert vssd.json("backup", "show", "--in", repo, last["id"])["bytes_stored"] > 0

    # Every image, restored to a new file, is the volume at its instant.
    for bid, ref in refs.items():
        to = os.path.join(workdir, "restored-" + bid)
        restore_to(vssd, repo, bid, to)
        assert os.path.getsize(to) == size
        assert sha256_file(to) == ref, bid
        os.unlink(to)
    vssd.vss("backup", "verify", "--in", repo)
    # And to the volume's own device, in place.
    restore_to(vssd, repo, chain[1]["id"], vssd.device("raw"))
    assert sha256_file(vssd.device("raw"), size) == refs[chain[1]["id"]]
    assert origin_hash(vssd, "raw") == refs[chain[1]["id"]]
    # A file of another size is not written over.
    other = os.path.join(workdir, "other")
    with open(other, "wb") as f:
        f.truncate(size // 2)
    r = vssd.vss("restore", "--from", repo, chain[1]["id"], "--to", other, check=False)
    assert r.returncode == 1 and "bytes" in r.stderr


def test_a_lost_diff_area_makes_the_next_incremental_full(vssd, workdir):
    """The diff area that held the tracking is deleted under vssd: the next
    image incremental cannot trust it, reads everything and says so, and
    restores the volume exactly."""
    repo = os.path.join(workdir, "repo")
    vssd.create_volume("raw", "32M")
    size = vssd.volume("raw")["size"]
    rng = random.Random(7)
    write_blocks(vssd.device("raw"), size, rng, 20)
    full = image_backup(vssd, repo, "full")
    diff = vssd.volume("raw")["diff_area"]
    os.unlink(diff)
    write_blocks(vssd.device("raw"), size, rng, 5)
    deadline = time.time() + 10
    while vssd.volume("raw")["state"] != "online" or vssd.volume("raw")["diff_area"] == diff:
        assert time.time() < deadline, vssd.volume("raw")
        time.sleep(0.05)
    write_blocks(vssd.device("raw"), size, rng, 5)
    ref = origin_hash(vssd, "raw")
    out = vssd.vss("backup", "create", "--image", "--to", repo, "--for", "raw", "--type",
                   "incremental", "--no-writers").stdout
    last = vssd.json("backup", "list", "--in", repo)["backups"][-1]
    assert last["type"] == "full" and last["id"] != full["id"], (last, out)
    assert "the changes since backup %s are unknown" % full["id"] in out and "made full" in out, out
    to = os.path.join(workdir, "restored")
    restore_to(vssd, repo, last["id"], to)
    assert sha256_file(to) == ref


def reachable(d, workdir):
    # Another user reaches the socket only through directories it may enter.
    for p in (workdir, d.root):
        os.chmod(p, 0o755)


def test_diff_between_shadows_and_bookmarks(vssd, workdir):
    size = 8 << 20
    vssd.create_volume("raw", str(size))
    dev = vssd.device("raw")
    rng = random.Random(7)
    a = vssd.shadow("raw")["shadows"][0]["id"]
    t1 = write_blocks(dev, size, rng, 6)
    b = vssd.shadow("raw")["shadows"][0]["id"]
    t2 = write_blocks(dev, size, rng, 4)

    def blocks(out):
        s = set()
        for line in out.splitlines():
            o, n = map(int, line.split())
            s.update(range(o // BS, (o + n - 1) // BS + 1))
        return s

    assert blocks(vssd.vss("diff", a, b).stdout) == t1
    assert blocks(vssd.vss("diff", a[:8]).stdout) == t1 | t2
    assert blocks(vssd.vss("diff", b, "now").stdout) == t2
    j = vssd.json("diff", a, b)
    assert j["from"] == a and j["to"] == b and j["volume"] == "raw" and j["size"] == size
    assert j["changed_bytes"] == sum(n for _, n in j["extents"]) and not j["bookmark"]
    r = vssd.vss("diff", b, a, check=False)
    assert r.returncode == 1 and "older" in r.stderr
    # Deleted without a bookmark: its changes are gone with it.
    vssd.vss("delete", "shadows", "--shadow", a)
    r = vssd.vss("diff", a, check=False)
    assert r.returncode == 1 and "no shadow copy or bookmark" in r.stderr
    # With one, they outlive it.
    vssd.vss("create", "shadow", "--for", "raw")
    c = vssd.shadows()[-1]["id"]
    assert vssd.vss("diff", c).stdout == ""
    assert vssd.vss("list", "bookmarks").stdout.strip() == \
        "No items found that satisfy the query."
    r = call(vssd, "bookmark.create", shadow=c[:8])
    assert r["ok"] and r["result"] == {"bookmark": c, "volume": "raw"}, r
    assert not call(vssd, "bookmark.create", shadow=c)["ok"]     # has one
    vssd.vss("delete", "shadows", "--shadow", c)
    t3 = write_blocks(dev, size, rng, 3)
    j = vssd.json("diff", c[:9])
    assert j["bookmark"] and {o // BS for o, _ in j["extents"]} <= t3
    assert blocks(vssd.vss("diff", c).stdout) == t3
    (bm,) = vssd.json("list", "bookmarks", "--for", "raw")["bookmarks"]
    assert bm["id"] == c and bm["state"] == "tracking" and bm["shadow"] is False
    assert bm["marked_bytes"] == len(t3) * BS
    assert c in vssd.vss("list", "bookmarks").stdout
    assert vssd.vss("delete", "bookmark", c[:8]).stdout.strip() == "Deleted bookmark %s." % c
    r = vssd.vss("delete", "bookmark", c, check=False)
    assert r.returncode == 1 and "no shadow copy or bookmark" in r.stderr
    r = vssd.vss("revert", b, "--bogus", check=False)
    assert r.returncode == 2
    # Users may list bookmarks, not see what changed.
    reachable(vssd, workdir)
    r = vssd.vss("diff", b, check=False, user=65534)
    assert r.returncode == 1 and "permission denied" in r.stderr
    vssd.vss("list", "bookmarks", user=65534)


def test_revert_ext4_volume(vssd, workdir):
    vssd.create_volume("fs", "64M")
    mnt = os.path.join(workdir, "mnt")
    vssd.vss("volume", "mount", "fs", mnt, "--mkfs", "ext4")
    # Every inode table is marked zeroed (mkfs on a new volume, which reads
    # zeros): the kernel's lazy init, which would zero them (4 MiB here)
    # after the mount at a pace the load sets, has nothing to write, so
    # nothing of it lands after the shadow below.
    groups = [g[0] for g in ext4_groups(vssd.device("fs"))[1]]
    assert groups and all("ITABLE_ZEROED" in l for l in groups), groups
    rng = random.Random(3)
    for i in range(20):
        with open(os.path.join(mnt, "f%d" % i), "wb") as f:
            f.write(rng.randbytes(rng.randrange(1, 300000)))
    os.mkdir(os.path.join(mnt, "dir"))
    older = vssd.shadow("fs")["shadows"][0]["id"]
    with open(os.path.join(mnt, "dir", "late"), "wb") as f:
        f.write(b"written after the older shadow")
    target = vssd.shadow("fs")["shadows"][0]["id"]
    want = {}
    for root, dirs, files in os.walk(mnt):
        for n in files:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                want[os.path.relpath(p, mnt)] = f.read()
    shadow_dev = os.path.join(vssd.run, "dev", "shadows", target)
    size = vssd.volume("fs")["size"]
    target_hash = sha256_file(shadow_dev, size)
    older_hash = sha256_file(os.path.join(vssd.run, "dev", "shadows", older), size)
    # Everything changes after it: files rewritten, deleted, made.
    for i in range(0, 20, 2):
        with open(os.path.join(mnt, "f%d" % i), "r+b") as f:
            f.write(rng.randbytes(5000))
    for i in range(1, 20, 4):
        os.unlink(os.path.join(mnt, "f%d" % i))
    with open(os.path.join(mnt, "new"), "wb") as f:
        f.write(rng.randbytes(1 << 20))
    newer = vssd.shadow("fs")["shadows"][0]["id"]
    with open(os.path.join(mnt, "newest"), "wb") as f:
        f.write(b"after the newer shadow")
    os.sync()

    r = vssd.vss("revert", target, check=False)
    assert r.returncode == 1 and "mounted" in r.stderr
    vssd.vss("volume", "umount", "fs")
    changed = vssd.json("diff", target, "now")["changed_bytes"]
    out = vssd.json("revert", target[:8])
    assert out["shadow"] == target and out["deleted"] == 1, out
    # Written back: exactly the blocks changed since the shadow (vss diff's
    # count, before), a small part of the volume; the revert's time is
    # proportional to that, not to the volume.
    assert out["rewritten"] == changed and 0 < changed < size // 16, (out, changed, size)
    assert "(%d bytes written back, 1 newer deleted)" % changed in vssd.log()
    # Again: nothing changed since, nothing to write back.
    out = vssd.vss("revert", target[:8]).stdout
    assert out == "Volume fs reverted to shadow copy %s (0 B written back, 0 newer shadow " \
        "copies deleted)\n" % target, out
    # Byte for byte the shadow's; the newer shadow is gone, the older exact.
    assert sha256_file(vssd.device("fs"), size) == target_hash
    ids = [s["id"] for s in vssd.shadows("--for", "fs")]
    assert ids == [older, target] and newer not in ids
    assert sha256_file(os.path.join(vssd.run, "dev", "shadows", older), size) == older_hash
    assert sha256_file(shadow_dev, size) == target_hash
    # The filesystem is the shadow's: the same files, the same bytes.
    vssd.vss("volume", "mount", "fs", mnt)
    got = {}
    for root, dirs, files in os.walk(mnt):
        for n in files:
            p = os.path.join(root, n)
            if "lost+found" in p:
                continue
            with open(p, "rb") as f:
                got[os.path.relpath(p, mnt)] = f.read()
    assert got == want
    vssd.vss("volume", "umount", "fs")
    subprocess.run(["e2fsck", "-fn", vssd.device("fs")], check=True, capture_output=True)
    # Only root may revert.
    reachable(vssd, workdir)
    r = vssd.vss("revert", older, check=False, user=65534)
    assert r.returncode == 1 and "permission denied" in r.stderr
