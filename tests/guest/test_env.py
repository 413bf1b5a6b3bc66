"""The guest itself: the kernel and the places the other tests rely on."""
import os
import subprocess


def test_kernel_has_what_the_host_lacks():
    with open("/proc/modules") as f:
        mods = {line.split()[0] for line in f}
    assert {"dm_thin_pool", "dm_snapshot", "nbd", "loop", "ext4", "xfs", "btrfs",
            "fuse"} <= mods
    assert os.path.exists("/dev/mapper/control") and os.path.exists("/dev/fuse")


def test_writable_places_and_tools():
    for d in ("/tmp", "/run", "/var/lib"):
        p = os.path.join(d, "vss-guest-probe")
        with open(p, "w") as f:
            f.write("x")
        os.unlink(p)
    r = subprocess.run(["lvm", "version"], capture_output=True, text=True, check=True)
    assert "LVM version" in r.stdout
    subprocess.run(["thin_delta", "-V"], capture_output=True, check=True)
