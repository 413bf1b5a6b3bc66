"""The command-line contract (../shared/spec/cli.md): outputs, JSON shapes,
delete modes, ID prefixes, volume deletion rules, bad sizes; a file whose
tests all skip exits 77."""
import glob
import os
import re
import subprocess
import sys
import time

from conftest import VSS

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_status_and_lists(vssd):
    st = vssd.json("status")
    for k in ("version", "volumes", "shadows", "writers"):
        assert k in st
    assert vssd.vss("status").stdout.startswith("vssd ")
    provs = vssd.json("list", "providers")["providers"]
    assert provs and all(set(p) >= {"name", "id", "version", "kind", "priority"} for p in provs)
    assert vssd.json("list", "writers") == {"writers": []}
    assert vssd.vss("list", "writers").stdout.strip() == "No items found that satisfy the query."
    assert vssd.json("volume", "list") == {"volumes": []}


def test_create_shadow_output(vssd):
    vssd.create_volume("a", "8M")
    vssd.create_volume("b", "8M")
    out = vssd.vss("create", "shadow", "--for", "a", "--for", "b").stdout.splitlines()
    assert UUID.match(out[0])
    rows = [l.split() for l in out[1:]]
    assert [r[1] for r in rows] == ["a", "b"]
    for sid, target, dev in rows:
        assert UUID.match(sid) and os.path.exists(dev)
    listed = vssd.shadows()
    assert {s["set"] for s in listed} == {out[0]}
    for s in listed:
        assert set(s) >= {"id", "set", "volume", "created", "device", "provider",
                          "attributes", "state", "diff_bytes"}
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", s["created"])
        assert s["state"] == "valid" and isinstance(s["attributes"], list)
    assert [s["id"] for s in vssd.shadows("--set", out[0][:8])] == [r[0] for r in rows]
    assert [s["id"] for s in vssd.shadows("--for", "b")] == [rows[1][0]]
    v = vssd.volume("a")
    assert set(v) >= {"name", "size", "block_size", "backing", "device", "mount", "shadows"}
    assert v["shadows"] == 1 and v["size"] == 8 << 20 and v["block_size"] == 16384


def test_delete_modes(vssd):
    vssd.create_volume("a", "8M")
    vssd.create_volume("b", "8M")
    sets = [vssd.shadow("a", "b")["set"] for _ in range(3)]
    ids_a = [s["id"] for s in vssd.shadows("--for", "a")]
    r = vssd.vss("delete", "shadows", "--for", "a", "--oldest")
    assert r.stdout.strip() == "Deleted 1 shadow copy."
    assert [s["id"] for s in vssd.shadows("--for", "a")] == ids_a[1:]
    r = vssd.vss("delete", "shadows", "--set", sets[1][:10])
    assert r.stdout.strip() == "Deleted 2 shadow copies."
    r = vssd.vss("delete", "shadows", "--shadow", ids_a[2][:8], "--quiet")
    assert r.stdout == ""
    r = vssd.vss("delete", "shadows", "--for", "b", "--all")
    assert r.stdout.strip() == "Deleted 2 shadow copies."
    assert vssd.shadows() == []
    vssd.shadow("a")
    vssd.shadow("b")
    assert vssd.vss("delete", "shadows", "--all").stdout.strip() == "Deleted 2 shadow copies."


def test_volume_delete_rules(vssd):
    vssd.create_volume("v", "8M")
    state_files = set(os.listdir(os.path.join(vssd.state, "volumes")))
    vssd.shadow("v")
    r = vssd.vss("volume", "delete", "v", check=False)
    assert r.returncode == 1 and "shadow" in r.stderr
    with open(vssd.device("v"), "rb", buffering=0) as f:
        vssd.vss("delete", "shadows", "--all")
        r = vssd.vss("volume", "delete", "v", check=False)
        assert r.returncode == 1 and "open" in r.stderr
        vssd.shadow("v")
        vssd.vss("volume", "delete", "v", "--force")   # shadows and all
        try:
            f.read(4096)
            assert False, "a deleted volume's device still reads"
        except OSError:
            pass
    assert vssd.json("volume", "list") == {"volumes": []}
    assert not os.path.exists(vssd.device("v"))
    # The files go once the last user closed the device (FUSE's release is
    # asynchronous to close(2)).
    for _ in range(100):
        if not set(os.listdir(os.path.join(vssd.state, "volumes"))) & state_files:
            break
        time.sleep(0.02)
    assert not (set(os.listdir(os.path.join(vssd.state, "volumes"))) & state_files)
    # The name is free again.
    vssd.create_volume("v", "8M")


def test_backing_file_and_env_run_dir(vssd):
    img = os.path.join(vssd.root, "disk.img")
    with open(img, "wb") as f:
        f.truncate(12 << 20)
    vssd.vss("volume", "create", "ext", "--backing", img, "--size", "1G")
    v = vssd.volume("ext")
    assert v["size"] == 12 << 20 and v["backing"] == img   # the backing's size wins
    env = dict(os.environ, VSS_RUN_DIR=vssd.run)
    r = subprocess.run([vssd_binary(), "list", "volumes", "--json"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0 and '"ext"' in r.stdout
    vssd.vss("volume", "delete", "ext")
    assert os.path.exists(img)   # not ours to delete


def vssd_binary():
    return VSS


def test_two_daemons_side_by_side(daemon_factory):
    d1, d2 = daemon_factory("one"), daemon_factory("two")
    d1.create_volume("x", "8M")
    d2.create_volume("x", "8M")
    d1.shadow("x")
    assert len(d1.shadows()) == 1 and d2.shadows() == []
    # A second vssd on the same state directory is refused.
    from conftest import Daemon
    dup = Daemon(d1.root)
    dup.start(wait=False)
    assert dup.proc.wait(10) == 1
    assert "another vssd" in dup.log()
    assert d1.vss("status").returncode == 0


def test_bad_sizes_are_usage_errors(vssd):
    # A size vssd would refuse as such is a usage error, as one that does
    # not parse is: exit 2, and vssd is never asked.
    cases = [
        (["--size", "64M", "--block-size", "3000"], "--block-size", "power of two"),
        (["--size", "8M", "--block-size", "3K"], "--block-size", "power of two"),
        (["--size", "8M", "--block-size", "2K"], "--block-size", "from 4K to 1M"),
        (["--size", "8M", "--block-size", "2M"], "--block-size", "from 4K to 1M"),
        (["--size", "8M", "--block-size", "0"], "--block-size", "power of two"),
        (["--size", "1000"], "--size", "multiple of 4K"),
        (["--size", "8M", "--block-size", "16K", "--size=12289"], "--size", "multiple of 4K"),
        (["--size", "0"], "--size", "multiple of 4K"),
    ]
    for extra, opt, msg in cases:
        r = vssd.vss("volume", "create", "x", *extra, check=False)
        assert r.returncode == 2, (extra, r.returncode, r.stderr)
        assert r.stderr.startswith("vss: error: volume create: " + opt) and msg in r.stderr, \
            (extra, r.stderr)
    assert vssd.json("volume", "list") == {"volumes": []}
    # The edges are sizes.
    vssd.vss("volume", "create", "lo", "--size", "8M", "--block-size", "4K")
    vssd.vss("volume", "create", "hi", "--size", "8M", "--block-size", "1M")
    assert (vssd.volume("lo")["block_size"], vssd.volume("hi")["block_size"]) == (4096, 1 << 20)
    # With --backing the backing's size wins: --size is not checked.
    img = os.path.join(vssd.root, "disk.img")
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    vssd.vss("volume", "create", "b", "--backing", img, "--size", "1000")
    assert vssd.volume("b")["size"] == 8 << 20


def test_a_file_whose_tests_all_skip_exits_77(workdir):
    # Nothing built where VSS_BUILD_DIR points: every test skips, and the
    # run says so to meson with 77 (conftest.py), not 0.
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        os.path.join(os.path.dirname(__file__), "test_roles.py")],
                       env=dict(os.environ, VSS_BUILD_DIR=workdir), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 77, r.stdout + r.stderr
    assert " skipped" in r.stdout and "passed" not in r.stdout

