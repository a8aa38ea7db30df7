"""pytest plugin: one lab VM per test session.

Register with ``-p lab.pytest_plugin`` or ``pytest_plugins = ["lab.pytest_plugin"]``.
The ``lab_vm`` fixture installs the host packages (if missing), builds or restores the image
(suite from env IPIP6_LAB_SUITE, default bookworm), boots one VM, yields the ``LabVM`` and powers
it off at the end. When the VM cannot be had the fixture fails the tests: it never skips.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from lab.host_packages import HostPackagesError, ensure_host_packages
from lab.image import ImageError, default_suite, ensure_image
from lab.vm import LabError, LabVM


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vm: needs the QEMU lab VM (booted once per session)")


@contextlib.contextmanager
def _uncaptured(request: pytest.FixtureRequest) -> Iterator[None]:
    """Show the lab's progress lines (build, boot) even while pytest captures output."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        yield
        return
    with capman.global_and_fixture_disabled():
        yield


@pytest.fixture(scope="session")
def lab_suite() -> str:
    """The Debian suite of the lab VM (env IPIP6_LAB_SUITE, default bookworm)."""
    return default_suite()


@pytest.fixture(scope="session")
def lab_vm(request: pytest.FixtureRequest, lab_suite: str) -> Iterator[LabVM]:
    """The session's running lab VM (see lab.vm.LabVM)."""
    vm: LabVM | None = None
    with _uncaptured(request):
        try:
            ensure_host_packages(quiet=True)
            image = ensure_image(lab_suite)
            # qemu daemonizes: tie it to this process so a killed test run leaves no VM behind
            vm = LabVM(suite=lab_suite, image=image, owner_pid=os.getpid())
            vm.boot()
        except (HostPackagesError, ImageError, LabError, OSError) as exc:
            if vm is not None:
                with contextlib.suppress(Exception):
                    vm.stop()
            pytest.fail(f"lab VM ({lab_suite}) unavailable: {exc}", pytrace=False)
        except BaseException:
            if vm is not None:
                with contextlib.suppress(Exception):
                    vm.stop()
            raise
    try:
        yield vm
    finally:
        with _uncaptured(request):
            vm.stop()
