"""Who may do what (doc/security.md): users list, operators (the operator
group) take and delete shadow copies, only root chooses files, devices,
mount points and options for vssd."""
import grp
import os

import pytest

NOBODY = 65534


@pytest.fixture
def operators():
    try:
        return grp.getgrnam("users").gr_gid
    except KeyError:
        pytest.skip("no group 'users' to stand for the operator group")


def reachable(vssd, workdir):
    # The socket must be reachable for another user to reach vssd at all
    # (the temporary directory is private by default).
    for p in (workdir, vssd.root):
        os.chmod(p, 0o755)


def test_operator_takes_shadows_but_does_not_choose_files(daemon_factory, workdir,
                                                          operators):
    vssd = daemon_factory(args=["--operator-group", "users"])
    reachable(vssd, workdir)
    vssd.create_volume("v", "8M")

    def op(*args):
        return vssd.vss(*args, user=NOBODY, groups=[operators], check=False)

    r = op("create", "shadow", "--for", "v", "--json")
    assert r.returncode == 0, r.stderr
    assert len(vssd.shadows()) == 1
    r = op("delete", "shadows", "--all")
    assert r.returncode == 0, r.stderr
    assert vssd.shadows() == []
    backing = os.path.join(workdir, "crafted.img")
    with open(backing, "wb") as f:
        f.truncate(8 << 20)
    root_only = (["volume", "create", "x", "--size", "8M"],
                 ["volume", "create", "y", "--backing", backing],
                 ["volume", "delete", "v"],
                 ["volume", "mount", "v", os.path.join(workdir, "m"), "--mkfs", "ext4"],
                 ["add", "shadowstorage", "--for", "v", "--on", workdir],
                 ["resize", "shadowstorage", "--for", "v", "--maxsize", "4M"])
    for args in root_only:
        r = op(*args)
        assert r.returncode == 1 and "only root may do this" in r.stderr, (args, r.stderr)
    assert [v["name"] for v in vssd.json("volume", "list")["volumes"]] == ["v"]
    assert not os.path.exists(os.path.join(workdir, "m"))


def test_the_group_is_vssds_choice(daemon_factory, workdir, operators):
    # Without --operator-group, membership of "users" gives nothing.
    vssd = daemon_factory()
    reachable(vssd, workdir)
    vssd.create_volume("v", "8M")
    r = vssd.vss("create", "shadow", "--for", "v", user=NOBODY, groups=[operators],
                 check=False)
    assert r.returncode == 1 and "permission denied" in r.stderr, r.stderr
    assert vssd.shadows() == []
