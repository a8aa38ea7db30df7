"""Router backups and what a restore makes of one, without a router: names, files, the checks
on a file given to a restore, and the candidate it gives. Through the CLI against the simulator:
tests/test_backup_restore_sim.py."""

from __future__ import annotations

import ipaddress
import os
from datetime import datetime
from pathlib import Path

import pytest

from ipip6.rtx import backup as backups
from ipip6.rtx.backup import (
    BackupError,
    BackupFileError,
    other_router,
    read_backup,
    router_folder,
    write_backup,
)
from ipip6.rtx.config import OwnedSection, RouterConfig, TunnelBlock, redact_text
from ipip6.rtx.restore import (
    RestoreRefused,
    check_same_router,
    keeps_tunnel_to,
    restored_section,
)
from ipip6.settings import SettingsError, load_router_settings

HEADER = (
    "# RTX1210 Rev.14.01.42 (Fri Jul  5 11:17:45 2024)\n"
    "# MAC Address : 00:a0:de:00:00:01, 00:a0:de:00:00:02, 00:a0:de:00:00:03\n"
    "# Memory 256Mbytes, 3LAN, 1BRI\n"
    "# Reporting Date: Dec 2 10:15:00 2026\n"
)
RUNNING = HEADER + (
    "login user admin *\n"
    "ip route default gateway tunnel 1\n"
    "ip lan1 address 192.168.100.1/24\n"
    "pp select 1\n"
    " pp auth myname isp-user s3cret-pppoe\n"
    "tunnel select 1\n"
    " tunnel encapsulation ipip\n"
    " tunnel endpoint address 2001:db8:1::1\n"
    " ip tunnel mtu 1460\n"
    " ip tunnel tcp mss limit auto\n"
    " tunnel enable 1\n"
    "ipsec ike pre-shared-key 1 text s3cret-psk\n"
    "embedded file 1 <<EOF\n"
    "token = 's3cret-in-a-script'\n"
    "print(token)\n"
    "EOF\n"
)
NOW = datetime(2026, 12, 2, 10, 15, 0)


def at(moment: datetime = NOW):
    return lambda: moment


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "folder"),
    [
        ("@rtx/192.0.2.1", "192.0.2.1"),
        ("@rtx/2001:db8::1", "2001_db8__1"),
        ("@rtx/home/../../etc", "home_.._.._etc"),  # one folder, never a path out of DIR
        ("@rtx/..", "_"),
        ("@rtx/ホーム", "___"),
    ],
)
def test_a_router_s_folder_is_one_safe_name(host, folder):
    assert router_folder(host) == folder


# -- writing ---------------------------------------------------------------------------------


def test_both_configs_are_written_with_secrets_hidden_and_the_folder_git_ignored(tmp_path):
    base = tmp_path / "backups"
    saved = RUNNING.replace("mtu 1460", "mtu 1400")
    made = write_backup(base, "@rtx/192.0.2.1", RUNNING, saved, now=at())
    assert made.running == base / "192.0.2.1" / "20261202-101500-running.txt"
    assert made.saved == base / "192.0.2.1" / "20261202-101500-saved.txt"
    assert (base / ".gitignore").read_text() == "*\n"
    text = made.running.read_text()
    assert text.startswith(HEADER)  # as the router printed it
    for secret in ("s3cret-pppoe", "s3cret-psk", "s3cret-in-a-script"):
        assert secret not in text and secret not in made.saved.read_text()
    assert "<2 lines of an embedded file, hidden>" in text
    # The owned lines are there as they ran, to be restored.
    assert " ip tunnel mtu 1460" in text and " ip tunnel mtu 1400" in made.saved.read_text()
    assert os.stat(made.running).st_mode & 0o777 == 0o600
    assert RouterConfig.parse(text).macs == (
        "00:a0:de:00:00:01",
        "00:a0:de:00:00:02",
        "00:a0:de:00:00:03",
    )


def test_a_second_backup_in_the_same_second_gets_its_own_name(tmp_path):
    first = write_backup(tmp_path, "@rtx/r", RUNNING, RUNNING, now=at())
    second = write_backup(tmp_path, "@rtx/r", RUNNING, RUNNING, now=at())
    assert second.running.name == "20261202-101500_2-running.txt"
    assert first.running.read_text() == second.running.read_text()
    assert len(list((tmp_path / "r").iterdir())) == 4


def test_an_existing_folder_gets_no_gitignore(tmp_path):
    write_backup(tmp_path, "@rtx/r", RUNNING, None, now=at())
    assert not (tmp_path / ".gitignore").exists()  # the user's folder: not ours to change


def test_no_saved_config_is_said_in_the_note(tmp_path):
    made = write_backup(tmp_path, "@rtx/r", RUNNING, None, saved_note="no file", now=at())
    assert made.saved is None and "(no file)" in made.describe()
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["20261202-101500-running.txt"]


def test_a_folder_that_cannot_be_made_is_an_error_naming_it(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(BackupError, match=r"could not create the backup folder .*/file/b/r"):
        write_backup(tmp_path / "file" / "b", "@rtx/r", RUNNING, RUNNING, now=at())


def test_a_failed_second_file_leaves_no_half_backup(tmp_path, monkeypatch):
    real = backups._create
    calls = []

    def create(path: Path, text: str) -> None:
        calls.append(path)
        if path.name.endswith("-saved.txt"):
            raise OSError(28, "No space left on device")
        real(path, text)

    monkeypatch.setattr(backups, "_create", create)
    with pytest.raises(BackupError, match=r"-saved.txt: No space left on device"):
        write_backup(tmp_path, "@rtx/r", RUNNING, RUNNING, now=at())
    assert list((tmp_path / "r").iterdir()) == []


def test_a_read_only_folder_is_an_error(tmp_path):
    if os.geteuid() == 0:
        # root writes anyway: a file in the way of the router's folder fails the same path.
        (tmp_path / "r").write_text("in the way")
        with pytest.raises(BackupError, match="could not create the backup folder"):
            write_backup(tmp_path, "@rtx/r", RUNNING, RUNNING, now=at())
        return
    (tmp_path / "r").mkdir()
    (tmp_path / "r").chmod(0o500)
    with pytest.raises(BackupError, match="Permission denied"):
        write_backup(tmp_path, "@rtx/r", RUNNING, RUNNING, now=at())


# -- reading back ----------------------------------------------------------------------------


def test_a_written_backup_reads_back_as_the_same_config(tmp_path):
    made = write_backup(tmp_path, "@rtx/r", RUNNING, RUNNING, now=at())
    config = read_backup(made.saved)
    assert config.model == "RTX1210"
    assert config == RouterConfig.parse(redact_text(RUNNING))
    assert config.block("tunnel select 1") == RouterConfig.parse(RUNNING).block("tunnel select 1")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("dir", "is not a file"),
        (b"\x82\xa0\xff", "is not a text file"),
        ("", "is not a router config backup"),
        ("ip route default gateway tunnel 1\n", "is not a router config backup"),  # no header
        ("# RTX1210 Rev.14.01.42\nip lan1 address 192.168.100.1/24\n", "not a router config"),
        (HEADER, "is not a router config backup"),  # a header and nothing else
        ("# MAC Address : 00:a0:de:00:00:01\nip lan1 address 1.2.3.4/24\n", "not a router"),
    ],
)
def test_a_file_that_is_no_backup_is_refused(tmp_path, content, message):
    path = tmp_path / "b.txt"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(BackupFileError, match=message):
        read_backup(path)


def test_whose_backup_is_told_by_the_mac_addresses_and_the_model():
    mine = RouterConfig.parse(RUNNING)
    assert other_router(mine, mine) is None
    # One address in common is the same router (a LAN port's MAC shown, another not).
    fewer = RouterConfig.parse(RUNNING.replace("00:a0:de:00:00:01, ", ""))
    assert other_router(fewer, mine) is None
    upper = RouterConfig.parse(RUNNING.replace("00:a0:de", "00:A0:DE"))
    assert other_router(upper, mine) is None
    theirs = RouterConfig.parse(RUNNING.replace("00:a0:de:00:00:", "00:a0:de:00:99:"))
    assert "another router (MAC Address 00:a0:de:00:99:01" in other_router(theirs, mine)
    model = RouterConfig.parse(RUNNING.replace("RTX1210", "RTX830"))
    assert "RTX830; this router is an RTX1210" in other_router(model, mine)
    blind = RouterConfig.parse(RUNNING.replace("# MAC Address", "# MAC"))
    assert "names no MAC address" in other_router(mine, blind)
    with pytest.raises(RestoreRefused, match=r"rtx_restore_from 'b.txt': .* Nothing was sent"):
        check_same_router(theirs, mine, "b.txt")


# -- the candidate a restore makes -----------------------------------------------------------


SCOPE = OwnedSection(
    tunnel_number=1,
    tunnel_lines=(
        "tunnel encapsulation ipip",
        "tunnel endpoint address 2001:db8:1::1",
        "ip tunnel mtu 1400",
        "ip tunnel tcp mss limit auto",
        "tunnel enable 1",
    ),
    global_lines=(
        "ipv6 filter 101 pass 2001:db8:1::1 2001:db8:2::1 4",
        "ip route default gateway tunnel 1",
    ),
)


def test_the_backup_s_values_for_the_owned_keys_and_nothing_else():
    restored = restored_section(SCOPE, RouterConfig.parse(RUNNING), "b.txt")
    assert "ip tunnel mtu 1460" in restored.tunnel_lines
    assert restored.global_lines == ("ip route default gateway tunnel 1",)
    # What the backup lacks goes; the router's other lines are not the restore's.
    assert restored.retired_keys == ("ipv6 filter 101",)
    assert all("lan1" not in x and "pp " not in x for x in restored.global_lines)
    assert restored.enabled_blocks == (TunnelBlock(1, restored.tunnel_lines),)


def test_a_backup_from_before_the_tunnel_takes_it_away():
    factory = RouterConfig.parse(
        HEADER + "ip route default gateway pp 1\nip lan1 address 192.168.100.1/24\n"
    )
    restored = restored_section(SCOPE, factory, "b.txt")
    assert restored.tunnel_lines == () and restored.enabled_blocks == ()
    assert restored.global_lines == ("ip route default gateway pp 1",)


def test_an_owned_line_hidden_in_the_backup_cannot_be_restored():
    hidden = RouterConfig.parse(RUNNING.replace(" ip tunnel mtu 1460", " ip tunnel mtu <hidden>"))
    with pytest.raises(RestoreRefused, match="was hidden in the backup"):
        restored_section(SCOPE, hidden, "b.txt")


# -- the data keys ---------------------------------------------------------------------------

GOOD = {
    "vps_ipv6": "2001:db8:1::1",
    "router_ipv6": "2001:db8:2::1",
    "home_networks": ["192.168.100.0/24"],
    "ssh_user": "admin",
    "ssh_password": "pw",
    "rtx_admin_password": "pw",
}


def router_error(**changes) -> str:
    with pytest.raises(SettingsError) as info:
        load_router_settings("@rtx/r", {**GOOD, **changes})
    return str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "not an empty string"),
        ("   ", "not an empty string"),
        (" backups", "without spaces around it"),
        ("back\nups", "on one line"),
        ("back\x00ups", "on one line"),
        (7, "not int"),
        (["backups"], "not list"),
    ],
)
def test_a_backup_folder_that_is_no_path_is_refused(value, expected):
    text = router_error(rtx_backup_dir=value)
    assert "rtx_backup_dir" in text and expected in text


def test_the_backup_to_restore_is_read_with_the_data(tmp_path, monkeypatch):
    made = write_backup(tmp_path, "@rtx/r", RUNNING, RUNNING, now=at())
    monkeypatch.chdir(tmp_path)
    relative = str(made.saved.relative_to(tmp_path))
    s = load_router_settings("@rtx/r", {**GOOD, "rtx_restore_from": relative})
    assert s.rtx_restore_from.path == relative
    assert s.rtx_restore_from.config.block("tunnel select 1") is not None
    assert load_router_settings("@rtx/r", GOOD).rtx_restore_from is None
    text = router_error(rtx_restore_from="r/missing-saved.txt")
    assert "rtx_restore_from (value 'r/missing-saved.txt'): no such file" in text
    (tmp_path / "notes.txt").write_text("my notes\n")
    assert "is not a router config backup" in router_error(rtx_restore_from="notes.txt")


def test_the_restore_is_checked_by_traffic_only_through_a_tunnel_it_keeps():
    vps = ipaddress.IPv6Address("2001:db8:1::1")
    restored = restored_section(SCOPE, RouterConfig.parse(RUNNING), "b.txt")
    assert keeps_tunnel_to(restored, vps)
    assert keeps_tunnel_to(restored, ipaddress.IPv6Address("2001:db8:1:0::1"))  # any form
    assert not keeps_tunnel_to(restored, ipaddress.IPv6Address("2001:db8:9::1"))
    disabled = RouterConfig.parse(RUNNING.replace(" tunnel enable 1\n", ""))
    assert not keeps_tunnel_to(restored_section(SCOPE, disabled, "b.txt"), vps)
    assert not keeps_tunnel_to(None, vps)
