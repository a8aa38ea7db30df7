"""pytest plugin: one lab VM per test session.

Register with ``-p lab.pytest_plugin`` or ``pytest_plugins = ["lab.pytest_plugin"]``.
The ``lab_vm`` fixture installs the host packages (if missing), builds or restores the image
(suite from env IPIP6_LAB_SUITE, default bookworm), boots one VM, saves it as snapshot
``booted`` once its boot has finished, yields the ``LabVM`` and powers it off at the end. When
the VM cannot be had the fixture fails the tests: it never skips. A module that starts from a
VM as it booted uses ``booted_vm`` (a restore of that snapshot: ~2 s, where undoing what earlier
modules deployed took a script and a reboot a minute).

While the VM runs, its console is watched: a guest kernel that reports a lasting soft lockup
will not come back, so the VM is stopped at once (the test waiting on it fails in seconds, not
at its timeout) and every failing test's report says why.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import pytest

from lab.host_packages import HostPackagesError, ensure_host_packages
from lab.image import ImageError, default_suite, ensure_image
from lab.vm import LabError, LabVM, tail

_WATCH = pytest.StashKey["KernelWatch"]()
#: The snapshot of the session's VM right after its boot.
BOOTED = "booted"


class KernelWatch:
    """Stops the lab VM when its kernel says it is stuck for good (``LabVM.kernel_stuck``)."""

    def __init__(self, vm: LabVM, interval: float = 5) -> None:
        self.vm = vm
        self.interval = interval
        self.reason: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-kernel-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            line = self.vm.kernel_stuck()
            if line is not None:
                self.reason = (
                    f"the lab VM's kernel is stuck ({line}); the VM was stopped. Console log "
                    f"{self.vm.console_log}, last lines:\n{tail(self.vm.console_log)}"
                )
                with contextlib.suppress(Exception):
                    self.vm.stop(timeout=0)
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    watch = item.config.stash.get(_WATCH, None)
    if report.failed and watch is not None and watch.reason is not None:
        report.sections.append(("lab VM", watch.reason))


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
            # Every unit started (or failed): the state the modules start from.
            vm.ssh("systemctl is-system-running --wait", check=False, timeout=180)
            vm.save_snapshot(BOOTED)
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
    watch = request.config.stash[_WATCH] = KernelWatch(vm)
    try:
        yield vm
    finally:
        watch.close()
        with _uncaptured(request):
            vm.stop()


@pytest.fixture(scope="module")
def booted_vm(lab_vm: LabVM) -> LabVM:
    """The session's VM put back as it booted (snapshot ``booted``), for a module of its own."""
    lab_vm.restore_snapshot(BOOTED)
    return lab_vm
