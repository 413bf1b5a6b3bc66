"""A real single-node Ceph cluster (ceph_cluster.py), started once for the
file, for the RBD tests."""
import os

import pytest

from ceph_cluster import CephCluster, missing_binaries

POOL = "vsstest"


@pytest.fixture(scope="module")
def ceph():
    missing = missing_binaries()
    if missing:
        pytest.skip("a Ceph cluster needs %s (Debian: ceph-mon ceph-osd ceph-common)"
                    % ", ".join(missing))
    if os.geteuid() != 0:
        pytest.skip("system tests need root")
    c = CephCluster()
    try:
        c.start()
        c.create_pool(POOL)
        yield c
    finally:
        c.stop()


def test_cluster_serves_images(ceph):
    data = os.urandom(1 << 20)
    src = os.path.join(ceph.root, "probe.in")
    out = os.path.join(ceph.root, "probe.out")
    with open(src, "wb") as f:
        f.write(data)
    ceph.rbd("import", src, POOL + "/probe")
    ceph.rbd("export", POOL + "/probe", out)
    with open(out, "rb") as f:
        assert f.read() == data
    ceph.rbd("rm", POOL + "/probe")


def test_fixture_teardown_kills_every_daemon():
    if missing_binaries() or os.geteuid() != 0:
        pytest.skip("needs the Ceph binaries and root")
    c = CephCluster()
    root = c.root
    try:
        c.start()
        pids = [p.pid for p in c.procs]
        assert len(pids) == 2
    finally:
        c.stop()
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid)
    assert not os.path.exists(root)

