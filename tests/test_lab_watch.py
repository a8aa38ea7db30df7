"""The lab VM's kernel watch, without a VM: which console lines mean the guest is gone."""

from __future__ import annotations

from lab.vm import LabVM

# From a real console log (bookworm, TCG): the RCU warning first, the lockup reports after it.
STUCK = """\
[   73.403408] rcu: INFO: rcu_preempt self-detected stall on CPU
[  100.543390] watchdog: BUG: soft lockup - CPU#0 stuck for 48s! [ping:645]
[  128.542203] watchdog: BUG: soft lockup - CPU#0 stuck for 74s! [ping:645]
"""


def test_a_lasting_soft_lockup_is_stuck_for_good(tmp_path):
    vm = LabVM(suite="bookworm", run_dir=tmp_path)
    assert vm.kernel_stuck() is None  # no console log yet
    first_two = "".join(STUCK.splitlines(keepends=True)[:2])
    vm.console_log.write_text("[    0.000000] Linux version 6.1.0\n" + first_two)
    assert vm.kernel_stuck() is None  # a stall warning, a short lockup: maybe just slow
    vm.console_log.write_text(STUCK)
    assert vm.kernel_stuck() == "soft lockup - CPU#0 stuck for 74s! [ping:645]"
