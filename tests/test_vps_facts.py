"""The VPS facts' commands and parsers, without a host."""

from ipip6.vps.facts import DebPackagesAndUfw, ManagedFiles


def test_managed_files_parses_sums_missing_and_owned():
    fact = ManagedFiles()
    command = fact.command(["/etc/a b.conf", "/etc/c"], ["/etc/systemd/network/60-ipip6-*"])
    assert "'/etc/a b.conf'" in command  # quoted
    assert "/etc/systemd/network/60-ipip6-*;" in command  # the glob is not
    out = fact.process(
        [
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  /etc/a b.conf",
            "ipip6-missing /etc/c",
            "ipip6-owned /etc/systemd/network/60-ipip6-old.netdev",
        ]
    )
    assert out["sums"] == {
        "/etc/a b.conf": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "/etc/c": None,
    }
    assert out["owned"] == ["/etc/systemd/network/60-ipip6-old.netdev"]
    assert out["pending"] == []


def test_packages_and_ufw():
    fact = DebPackagesAndUfw()
    out = fact.process(
        [
            "pkg iptables ii ",
            "pkg iptables-persistent rc ",
            "ufw Status: active",
        ]
    )
    assert out == {
        "installed": {"iptables": True, "iptables-persistent": False},
        "ufw_active": True,
    }
    assert fact.process(["ufw Status: inactive"])["ufw_active"] is False
    assert fact.default() == {"installed": {}, "ufw_active": False}
