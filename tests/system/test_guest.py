"""The tests that need a kernel this machine may lack (device-mapper, NBD):
one boot of the guest (scripts/guest.sh: Debian 12's own kernel under qemu,
this machine's root read-only over 9p) runs every file of tests/guest/ in
it, and this test passes when they all do.  Skipped, saying why, when the
kernel package is not there (scripts/setup.sh fetches it).  The guest and
its qemu end with this test, whatever happens: its process group is killed.
"""
import os
import signal
import subprocess
import sys

import pytest

from conftest import BUILD

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GUEST = os.path.join(REPO, "scripts", "guest.sh")
GUEST_TESTS = os.path.join(REPO, "tests", "guest")
TIMEOUT = 500


class Stopped(Exception):
    pass


def _stop(signum, frame):
    raise Stopped("signal %d" % signum)


def test_guest_suite():
    cmd = [GUEST, "--timeout", str(TIMEOUT), "--mem", "1024", "--",
           "env", "VSS_BUILD_DIR=" + os.path.abspath(BUILD), "PYTHONDONTWRITEBYTECODE=1",
           "/usr/bin/python3", "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
           GUEST_TESTS]
    old = signal.signal(signal.SIGTERM, _stop)
    p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=TIMEOUT + 60)
    finally:
        # guest.sh and its qemu share a process group: nothing outlives the test.
        if p.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(p.pid, sig)
                    p.wait(10)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        signal.signal(signal.SIGTERM, old)
    sys.stdout.write(out)
    sys.stderr.write(err)
    if p.returncode == 77:
        pytest.skip(err.strip().splitlines()[-1] if err.strip() else "no guest")
    assert p.returncode == 0, "in the guest: exit %d\n%s\n%s" % (p.returncode, out, err)
    assert " passed" in out
