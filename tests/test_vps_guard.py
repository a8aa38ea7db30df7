"""The rollback guard's shell, rendered without a host; run for real in test_vps_vm_safety."""

import subprocess

from ipip6.vps.guard import (
    GUARD_DIR,
    Guard,
    firewall_restore_script,
    new_token,
    tunnel_restore_script,
    tunnel_snapshot,
)


def sh_syntax_ok(script: str) -> bool:
    return subprocess.run(["sh", "-n"], input=script, text=True, check=False).returncode == 0


def test_arm_runs_the_restore_script_after_the_delay():
    guard = Guard("firewall", 90)
    assert guard.arm() == (
        "systemd-run --quiet --unit=ipip6-guard-firewall --on-active=90 "
        f"--timer-property=AccuracySec=1s /bin/sh {GUARD_DIR}/firewall.restore"
    )


def test_confirm_commits_only_with_the_token():
    guard = Guard("firewall", 90)
    token = new_token()
    text = guard.confirm_or_restore(token, then=["mv -f a.new a"])
    assert text.startswith(
        f"if [ -e {token} ] && systemctl is-active --quiet ipip6-guard-firewall.timer; then "
        f"rm -f {token}; "
    )
    commit, rollback = text.split("; else ")
    assert "systemctl stop ipip6-guard-firewall.timer; mv -f a.new a" in commit
    assert f"sh {GUARD_DIR}/firewall.restore" in rollback and "exit 1" in rollback
    assert rollback.startswith(f"rm -f {token}; systemctl stop ipip6-guard-firewall.timer; ")
    assert "mv -f" not in rollback
    assert sh_syntax_ok(text)
    assert new_token() != token


def test_a_pending_guard_is_rolled_back_before_a_new_change():
    text = Guard("tunnel", 30).recover_pending()
    assert "systemctl is-active --quiet ipip6-guard-tunnel.timer" in text
    assert f"sh {GUARD_DIR}/tunnel.restore" in text
    assert sh_syntax_ok(text)


def test_restore_scripts_are_valid_shell():
    fw = firewall_restore_script(
        ["/etc/ipip6/firewall.v4.ipip6-new"], [("iptables-restore", "/etc/iptables/rules.v4")]
    )
    # Only the deploy's part, from the saved copy without a flush, the jumps left in place.
    assert f"restore_owned iptables {GUARD_DIR}/firewall.v4 filter nat mangle" in fw
    assert f"restore_owned ip6tables {GUARD_DIR}/firewall.v6 filter" in fw
    assert "$cmd-restore -w --noflush" in fw and '-C "$base" -j "$chain"' in fw
    assert "iptables-restore -w --noflush < /etc/iptables/rules.v4" in fw
    assert "rm -f /etc/ipip6/firewall.v4.ipip6-new" in fw
    assert "iptables-restore <" not in fw and " -F\n" not in fw
    globs = ["/etc/systemd/network/60-ipip6-*"]
    tun = tunnel_restore_script(globs, ["tun-home", "tun-old"])
    assert "ip link del dev tun-old" in tun and "systemctl restart systemd-networkd" in tun
    for script in (fw, tun, tunnel_snapshot(globs)):
        assert sh_syntax_ok(script)
