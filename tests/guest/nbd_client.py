"""The kernel's NBD client, driven by Debian's nbd-client (package
nbd-client): attach an export's Unix socket to a free /dev/nbdN, detach it.
Shared by the guest's tests (this machine's kernel has no NBD)."""
import os
import subprocess
import time


def _connected(n):
    return os.path.exists("/sys/block/nbd%d/pid" % n)


def free_device():
    """The first /dev/nbdN nothing is attached to (the nbd module makes 16)."""
    n = 0
    while os.path.exists("/sys/block/nbd%d" % n):
        if not _connected(n):
            return n
        n += 1
    raise AssertionError("no free /dev/nbdN (is the nbd module loaded?)")


def attach(socket, n, timeout=20):
    """nbd-client on @socket at /dev/nbd@n, without -readonly: the device is
    read-only only if the server says the export is.  Returns its path once
    the kernel knows its size."""
    dev = "/dev/nbd%d" % n
    r = subprocess.run(["nbd-client", "-unix", socket, dev], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, "nbd-client -unix %s %s: %s%s" % (socket, dev, r.stdout,
                                                                r.stderr)
    deadline = time.monotonic() + timeout
    while int(open("/sys/block/nbd%d/size" % n).read()) == 0:
        assert time.monotonic() < deadline, dev + " has no size"
        time.sleep(0.1)
    return dev


def detach(n, timeout=20):
    """nbd-client -d, then waits until the kernel no longer holds a connection."""
    subprocess.run(["nbd-client", "-d", "/dev/nbd%d" % n], capture_output=True,
                   timeout=timeout)
    deadline = time.monotonic() + timeout
    while _connected(n):
        assert time.monotonic() < deadline, "/dev/nbd%d still connected" % n
        time.sleep(0.1)
