"""A full filesystem under a diff area: the oldest shadows make room.

The diff area lives on a small ext4 filesystem the test makes and mounts
itself. Writes to the volume copy far more than that filesystem holds: every
write must succeed and read back, the oldest shadows go first (and say so in
the log), the survivors stay exact, and the diff area as a whole never fails.
"""
import hashlib
import os
import random
import subprocess

from conftest import sha256_file

MiB = 1 << 20
VOLUME = 96 * MiB
SMALL_FS = 48 * MiB


def pwrite_all(dev, ref, rng, count, sizes):
    """@count random writes to @dev, each also applied to @ref; fsync'd."""
    fd = os.open(dev, os.O_RDWR)
    try:
        for _ in range(count):
            n = rng.choice(sizes)
            off = rng.randrange(0, VOLUME - n) // 4096 * 4096
            data = rng.randbytes(n)
            assert os.pwrite(fd, data, off) == n
            ref[off:off + n] = data
        os.fsync(fd)
    finally:
        os.close(fd)


def test_full_filesystem_deletes_the_oldest_shadows(vssd):
    img = os.path.join(vssd.root, "small.img")
    mnt = os.path.join(vssd.root, "small")
    os.mkdir(mnt)
    with open(img, "wb") as f:
        f.truncate(SMALL_FS)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "nodiscard", img], check=True)
    subprocess.run(["mount", "-o", "loop", img, mnt], check=True)
    try:
        # 4 KiB blocks: many copy records per MiB, so the log grows often
        # and must find room in a full filesystem too.
        dev = vssd.create_volume("full", "%dM" % (VOLUME // MiB), "--block-size", "4K")["device"]
        vssd.vss("add", "shadowstorage", "--for", "full", "--on", mnt)
        with open(dev, "rb") as f:
            ref = bytearray(f.read())
        rng = random.Random(7)
        kept = []      # (id, sha256 of the volume at its instant, persistent)
        # Each round copies about 1.6 MiB: the filesystem fills after about
        # 25 of them, and from then on the oldest shadows have to go.
        for r in range(60):
            pwrite_all(dev, ref, rng, 400, [4096])
            persistent = r % 2 == 1
            sid = vssd.shadow("full", persistent=persistent)["shadows"][0]["id"]
            kept.append((sid, hashlib.sha256(ref).hexdigest(), persistent))
        pwrite_all(dev, ref, rng, 40, [MiB])

        assert sha256_file(dev, VOLUME) == hashlib.sha256(ref).hexdigest()
        log = vssd.log()
        assert "metadata cannot be written" not in log, log
        left = vssd.shadows()
        ids = [s["id"] for s in left]
        order = [sid for sid, _, _ in kept]
        assert len(ids) < len(order), "nothing was deleted: the filesystem never filled"
        assert ids == order[len(order) - len(ids):], (ids, order)
        assert "make room" in log or "diff area limit" in log, log
        for s in left:
            if s["state"] != "valid":
                assert s["id"] == order[-1] and len(left) == 1, left
                continue
            ref_sha = next(h for sid, h, _ in kept if sid == s["id"])
            assert sha256_file(os.path.join(vssd.run, "dev", "shadows", s["id"]),
                               VOLUME) == ref_sha, s["id"]
        assert vssd.json("list", "shadowstorage", "--for", "full")["shadowstorage"]

        # A restart with the filesystem still full brings the volume up,
        # and the persistent survivors read exactly as before.
        survivors = [(sid, h) for sid, h, p in kept
                     if p and any(s["id"] == sid and s["state"] == "valid" for s in left)]
        vssd.restart()
        ids = [s["id"] for s in vssd.shadows()]
        for sid, h in survivors:
            assert sid in ids, (sid, ids, vssd.log()[-2000:])
            assert sha256_file(os.path.join(vssd.run, "dev", "shadows", sid), VOLUME) == h
        assert sha256_file(dev, VOLUME) == hashlib.sha256(ref).hexdigest()
        # Live writes go on; a shadow is then exact or invalid, never wrong.
        pwrite_all(dev, ref, rng, 200, [4096])
        assert sha256_file(dev, VOLUME) == hashlib.sha256(ref).hexdigest()
        for s in vssd.shadows():
            h = next(h for sid, h, _ in kept if sid == s["id"])
            if s["state"] == "valid":
                assert sha256_file(os.path.join(vssd.run, "dev", "shadows", s["id"]),
                                   VOLUME) == h, s["id"]
    finally:
        vssd.stop()
        if subprocess.run(["umount", mnt], capture_output=True).returncode:
            subprocess.run(["umount", "-l", mnt], capture_output=True)
