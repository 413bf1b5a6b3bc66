"""The kernel's NBD client on a vss export: a shadow of an ext4 vss volume
(FUSE and a loop device, vssd in the guest: the guest has no network and
9p does not carry connections to a host's Unix socket) is served by `vss
export`, attached to /dev/nbdN by Debian's nbd-client, read-only because
the export says so, mounted read-only, and its files equal, byte for byte,
a plain copy of the volume's tree made right before the shadow; what was
written after the shadow is not there.  Detached, unmounted and unexported
whatever happens.
"""
import os
import shutil
import stat
import subprocess
import time

import nbd_client


def sh(*argv, check=True):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError("%s -> %d: %s" % (" ".join(map(str, argv)), r.returncode, r.stderr))
    return r


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def entries(root):
    """Every name under @root: its kind, mode and bytes (a link: its target)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            if rel == "lost+found" or rel.startswith("lost+found/"):
                continue
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", stat.S_IMODE(st.st_mode), f.read())
    return out


def test_nbd_client_mounts_exported_shadow(vssd, workdir):
    mnt = os.path.join(workdir, "vol")
    vssd.create_volume("v", "32M")
    vssd.vss("volume", "mount", "v", mnt, "--mkfs", "ext4")
    os.makedirs(os.path.join(mnt, "d", "e"))
    write(os.path.join(mnt, "d", "small"), b"before\n")
    write(os.path.join(mnt, "d", "e", "random"), os.urandom(1 << 20))
    write(os.path.join(mnt, "empty"), b"")
    write(os.path.join(mnt, "gone-later"), b"x" * 5000)
    os.chmod(os.path.join(mnt, "d", "small"), 0o640)
    os.symlink("d/small", os.path.join(mnt, "link"))
    sh("sync", "-f", mnt)
    # The plain reference: the volume's tree at the shadow's instant.
    ref = os.path.join(workdir, "ref")
    shutil.copytree(mnt, ref, symlinks=True, ignore=shutil.ignore_patterns("lost+found"))
    shadow = vssd.shadow(mnt)["shadows"][0]["id"]
    # After the instant: changed, removed, added.
    write(os.path.join(mnt, "d", "small"), b"after\n")
    os.unlink(os.path.join(mnt, "gone-later"))
    write(os.path.join(mnt, "new"), b"new\n")
    expected = entries(ref)
    assert entries(mnt) != expected

    t0 = time.monotonic()
    x = vssd.json("export", shadow)
    at = os.path.join(workdir, "nbd")
    os.makedirs(at)
    n = nbd_client.free_device()
    try:
        dev = nbd_client.attach(x["socket"], n)
        assert int(open("/sys/block/nbd%d/size" % n).read()) * 512 == 32 << 20
        # Read-only because the export is: nbd-client was not told -readonly.
        assert sh("blockdev", "--getro", dev).stdout.strip() == "1"
        sh("mount", "-t", "ext4", "-o", "ro,noload", dev, at)
        try:
            got = entries(at)
            assert sorted(got) == sorted(expected)
            assert got == expected
            r = sh("touch", os.path.join(at, "w"), check=False)
            assert r.returncode != 0
        finally:
            sh("umount", at, check=False)
        print("nbd-client: /dev/nbd%d of shadow %s mounted read-only, %d entries equal "
              "the reference; export, attach, mount, compare %.2f s"
              % (n, shadow[:8], len(got), time.monotonic() - t0))
    finally:
        nbd_client.detach(n)
        vssd.vss("unexport", shadow, check=False)
    assert not os.path.exists("/sys/block/nbd%d/pid" % n)
    assert vssd.json("list", "exports")["exports"] == []
