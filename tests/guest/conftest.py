"""Tests run inside the guest (scripts/guest.sh; tests/system/test_guest.py
boots it): device-mapper and LVM, which this machine's kernel may lack.
They use the system tests' fixtures (a private directory, vssd, cleanup
even on failure); outside the guest every one of them is skipped.
"""
import importlib.util
import os
import sys

import pytest

SYSTEM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system")
# The system tests' conftest under its own name (this file is "conftest" here).
_spec = importlib.util.spec_from_file_location("system_conftest",
                                               os.path.join(SYSTEM, "conftest.py"))
system = importlib.util.module_from_spec(_spec)
sys.modules["system_conftest"] = system
_spec.loader.exec_module(system)
daemon_factory, vssd, workdir = system.daemon_factory, system.vssd, system.workdir
# What the system tests' own modules import from "conftest", which is this
# one here: so that a guest test can use their writers (test_fs's busy tree).
VSS, ext4_groups = system.VSS, system.ext4_groups


def pytest_collection_modifyitems(config, items):
    why = None
    if os.environ.get("VSS_GUEST") != "1":
        why = "runs only inside the guest (tests/system/test_guest.py boots it)"
    elif not os.path.exists("/dev/mapper/control"):
        why = "no device-mapper in this kernel"
    if why:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=why))
