"""Shadow storage through the command line: limits delete the oldest
shadows, then invalidate the newest, and live writes never fail."""
import os
import subprocess

import pytest

from conftest import sha256_file

MiB = 1 << 20


def write(dev, off_mib, mib, byte):
    """Writes @mib MiB of @byte at @off_mib MiB; must succeed."""
    subprocess.run(["dd", "of=" + dev, "bs=1M", "count=%d" % mib, "seek=%d" % off_mib,
                    "conv=notrunc,fsync", "iflag=fullblock", "status=none"],
                   input=bytes([byte]) * (mib * MiB), check=True)


def storage(d, name):
    (st,) = d.json("list", "shadowstorage", "--for", name)["shadowstorage"]
    return st


def test_limits_delete_oldest_then_invalidate(vssd):
    dev = vssd.create_volume("lim", "64M")["device"]
    vssd.vss("add", "shadowstorage", "--for", "lim", "--maxsize", "12M")
    st = storage(vssd, "lim")
    assert st["max"] == 12 * MiB
    assert st["volume"] == "lim" and st["location"].endswith(".diff")
    s1 = vssd.shadow("lim")["shadows"][0]["id"]
    write(vssd.device("lim"), 0, 6, 1)
    ref2 = sha256_file(vssd.volume("lim")["backing"])
    s2 = vssd.shadow("lim")["shadows"][0]["id"]
    write(dev, 8, 7, 2)        # s2 needs 7 MiB more: s1 must go
    ids = [s["id"] for s in vssd.shadows()]
    assert ids == [s2]
    assert "diff area limit" in vssd.log()
    assert sha256_file(os.path.join(vssd.run, "dev", "shadows", s2)) == ref2
    write(dev, 16, 16, 3)      # s2 alone cannot keep up: invalid
    (s,) = vssd.shadows()
    assert s["id"] == s2 and s["state"] == "invalid"
    with pytest.raises(OSError):
        with open(os.path.join(vssd.run, "dev", "shadows", s2), "rb") as f:
            f.read(MiB)
    assert "invalidated" in vssd.log()
    assert "near full" in vssd.log()
    # Live writes went on all along, and read back.
    with open(dev, "rb") as f:
        f.seek(16 * MiB)
        assert f.read(MiB) == bytes([3]) * MiB


def test_resize_and_delete_storage(vssd):
    dev = vssd.create_volume("rs", "64M")["device"]
    vssd.vss("add", "shadowstorage", "--for", "rs", "--maxsize", "UNBOUNDED")
    assert storage(vssd, "rs")["max"] is None
    r = vssd.vss("add", "shadowstorage", "--for", "rs", check=False)
    assert r.returncode == 1   # already there: resize it instead
    ids = []
    for k in range(4):
        ids.append(vssd.shadow("rs")["shadows"][0]["id"])
        write(dev, 4 * k, 4, 10 + k)
    assert storage(vssd, "rs")["used"] >= 16 * MiB
    vssd.vss("resize", "shadowstorage", "--for", "rs", "--maxsize", "10M")
    left = [s["id"] for s in vssd.shadows()]
    assert left and left == ids[-len(left):] and len(left) < 4   # oldest went first
    assert storage(vssd, "rs")["used"] <= 10 * MiB
    vssd.vss("resize", "shadowstorage", "--for", "rs", "--maxsize", "50%")
    assert storage(vssd, "rs")["max"] == 32 * MiB
    r = vssd.vss("delete", "shadowstorage", "--for", "rs", check=False)
    assert r.returncode == 1 and "shadow" in r.stderr
    vssd.vss("delete", "shadows", "--for", "rs", "--all")
    vssd.vss("delete", "shadowstorage", "--for", "rs")
    assert storage(vssd, "rs")["max"] is None


def test_storage_on_another_directory(vssd):
    dev = vssd.create_volume("mv", "16M")["device"]
    where = os.path.join(vssd.root, "elsewhere")
    os.mkdir(where)
    write(dev, 0, 2, 5)
    vssd.vss("add", "shadowstorage", "--for", "mv", "--on", where, "--maxsize", "8M")
    st = storage(vssd, "mv")
    assert os.path.dirname(st["location"]) == where and os.path.exists(st["location"])
    ref = sha256_file(vssd.volume("mv")["backing"])
    sid = vssd.shadow("mv")["shadows"][0]["id"]
    write(dev, 0, 2, 6)
    assert sha256_file(os.path.join(vssd.run, "dev", "shadows", sid)) == ref
    vssd.restart()
    assert storage(vssd, "mv")["location"] == st["location"]
    assert storage(vssd, "mv")["max"] == 8 * MiB
    r = vssd.vss("list", "shadowstorage")
    assert "mv" in r.stdout and where in r.stdout
