"""Build (once) and cache the Debian disk image of the lab "VPS" VM.

``ensure_image(suite)`` returns the paths of a cached image, building it when the recipe (this
file: package list, hooks, configuration) changed. The build needs root, mmdebstrap, mkfs.ext4
(``python -m lab.host_packages`` installs them) and the Debian mirror that the host's own apt
configuration names. Nothing is fetched from anywhere else.

Cache: ``${IPIP6_LAB_CACHE:-~/.cache/ipip6-lab}/<suite>-<hash>/`` holding

- ``base.raw``          ext4 root file system (sparse, never written to: VMs use qcow2 overlays)
- ``vmlinuz``, ``initrd.img``   for direct kernel boot
- ``id_ed25519[.pub]``  SSH client key authorised for root and ubuntu
- ``host_keys.pub``     the guest's SSH host public keys (for a strict known_hosts file)
- ``manifest.json``     suite, hash, mirror, kernel version, build time

Usage: ``python -m lab.image [--suite SUITE] [--rebuild]``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUITES = ("bullseye", "bookworm", "trixie")
DEFAULT_SUITE = "bookworm"

PACKAGES = [
    "linux-image-amd64",
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "systemd-resolved",
    "openssh-server",
    "iproute2",
    "iptables",
    "iptables-persistent",
    "netplan.io",
    "nftables",
    "python3",
    "sudo",
    "tcpdump",
    "iputils-ping",
    "kmod",
    "netbase",
    "procps",
    "socat",
    "iperf3",
    "ethtool",
    "passwd",
    # Neighbours the VPS firewall must coexist with (disabled at boot: the tests that need them
    # start them). busybox-static makes the one container image the lab can have offline.
    "docker.io",
    "fail2ban",
    "python3-systemd",
    "busybox-static",
]

# fail2ban as a VPS would run it: the sshd jail, read from the journal (no rsyslog here), bans
# as iptables rules in chains of its own.
FAIL2BAN_JAIL = """\
[DEFAULT]
banaction = iptables-multiport
banaction_allports = iptables-allports

[sshd]
enabled = true
backend = systemd
"""

# Answers for every debconf question the packages above would ask.
DEBCONF_SELECTIONS = """\
iptables-persistent iptables-persistent/autosave_v4 boolean false
iptables-persistent iptables-persistent/autosave_v6 boolean false
iperf3 iperf3/start_daemon boolean false
"""

# Kernel module directories nobody needs in a virtio VM (relative to lib/modules/*/kernel/).
# Kept on purpose: net/ipv6 (ip6_tunnel, tunnel6), net/netfilter, net/ipv4, net/bridge,
# drivers/virtio, drivers/net/virtio_net, drivers/block, drivers/char.
MODULE_EXCLUDES = [
    "drivers/gpu",
    "drivers/media",
    "drivers/net/wireless",
    "drivers/net/ethernet",
    "drivers/net/can",
    "drivers/net/usb",
    "drivers/usb",
    "drivers/infiniband",
    "drivers/isdn",
    "drivers/bluetooth",
    "drivers/staging",
    "drivers/iio",
    "drivers/scsi",
    "drivers/target",
    "drivers/mtd",
    "drivers/nfc",
    "drivers/hid",
    "drivers/thunderbolt",
    "drivers/firewire",
    "drivers/platform/x86",
    "drivers/atm",
    "drivers/input/touchscreen",
    "drivers/input/joystick",
    "drivers/input/misc",
    "drivers/hwmon",
    "drivers/video",
    "drivers/mfd",
    "drivers/comedi",
    "drivers/watchdog",
    "sound",
    "net/wireless",
    "net/mac80211",
    "net/bluetooth",
    "net/nfc",
    "net/can",
    "net/atm",
    "fs/ocfs2",
    "fs/gfs2",
    "fs/xfs",
    "fs/btrfs",
    "fs/ceph",
    "fs/nfs",
    "fs/smb",
    "fs/cifs",
]
DOC_EXCLUDES = ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*"]
INITRAMFS_MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "ext4"]

HOSTNAME = "vps"
GUEST_IPV6 = "2001:db8:1::1"

NETPLAN_YAML = f"""\
# The lab VM's uplink. QEMU user networking (restrict=on) hands out 10.0.2.15 by DHCP,
# which the SSH port forward needs; it gives no default route and no DNS.
network:
  version: 2
  renderer: networkd
  ethernets:
    ens3:
      dhcp4: true
      dhcp4-overrides:
        use-dns: false
        use-ntp: false
      dhcp6: false
      accept-ra: false
      addresses:
        - {GUEST_IPV6}/64
"""

SSHD_CONFIG = """\
# lab: keys only, like a cloud image
PermitRootLogin prohibit-password
PasswordAuthentication no
"""

HOSTS = f"""\
127.0.0.1\tlocalhost
127.0.1.1\t{HOSTNAME}
::1\tlocalhost ip6-localhost ip6-loopback
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""

MASKED_UNITS = [
    "serial-getty@ttyS0.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "apt-daily.service",
    "apt-daily-upgrade.service",
    "systemd-firstboot.service",
]


class ImageError(RuntimeError):
    pass


@dataclass(frozen=True)
class ImagePaths:
    suite: str
    key: str
    dir: Path
    base: Path
    kernel: Path
    initrd: Path
    ssh_key: Path
    ssh_pubkey: Path
    host_keys: Path
    manifest: Path

    @classmethod
    def at(cls, directory: Path, suite: str, key: str) -> ImagePaths:
        return cls(
            suite=suite,
            key=key,
            dir=directory,
            base=directory / "base.raw",
            kernel=directory / "vmlinuz",
            initrd=directory / "initrd.img",
            ssh_key=directory / "id_ed25519",
            ssh_pubkey=directory / "id_ed25519.pub",
            host_keys=directory / "host_keys.pub",
            manifest=directory / "manifest.json",
        )

    def complete(self) -> bool:
        return all(
            p.is_file()
            for p in (
                self.base,
                self.kernel,
                self.initrd,
                self.ssh_key,
                self.ssh_pubkey,
                self.host_keys,
                self.manifest,
            )
        )

    def known_hosts(self, host: str = "127.0.0.1", port: int = 22) -> str:
        """known_hosts text naming the guest's host keys for ``host`` (and ``port``)."""
        name = host if port == 22 else f"[{host}]:{port}"
        lines = []
        for line in self.host_keys.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                lines.append(f"{name} {parts[0]} {parts[1]}")
        return "\n".join(lines) + "\n"


def _log(msg: str) -> None:
    print(f"[lab] {msg}", flush=True)


def cache_root() -> Path:
    env = os.environ.get("IPIP6_LAB_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "ipip6-lab"
    return root.expanduser().resolve()


def default_suite() -> str:
    return os.environ.get("IPIP6_LAB_SUITE") or DEFAULT_SUITE


def packages_for(suite: str) -> list[str]:
    pkgs = list(PACKAGES)
    if suite == "bullseye":
        # systemd 247 still ships resolved inside the systemd package
        pkgs.remove("systemd-resolved")
    if suite == "trixie":
        # Debian 13 splits Docker's client out of docker.io (a Recommends, not installed here)
        pkgs.append("docker-cli")
    return pkgs


def recipe_hash(suite: str) -> str:
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update(b"\0" + suite.encode() + b"\0")
    h.update(" ".join(packages_for(suite)).encode())
    return h.hexdigest()[:16]


# --- the Debian mirror, from the host's own apt configuration -----------------------------

_DEBIAN_SUITES = {
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "sid",
    "stable",
    "oldstable",
    "testing",
    "unstable",
}


def _apt_source_entries() -> Iterator[tuple[str, list[str]]]:
    """(uri, suites) of every enabled 'deb' source of the host."""
    files = ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]
    for name in files:
        try:
            text = Path(name).read_text()
        except OSError:
            continue
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line.startswith("deb "):
                continue
            line = re.sub(r"\[[^]]*\]", " ", line[4:])
            parts = line.split()
            if len(parts) >= 2:
                yield parts[0], [parts[1]]
    for name in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            text = Path(name).read_text()
        except OSError:
            continue
        for para in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            key = None
            for raw in para.splitlines():
                if raw.startswith("#"):
                    continue
                if raw[:1] in (" ", "\t") and key:
                    fields[key] += " " + raw.strip()
                    continue
                if ":" in raw:
                    key, value = raw.split(":", 1)
                    key = key.strip().lower()
                    fields[key] = value.strip()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            if "deb" not in fields.get("types", "").split():
                continue
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split()


def find_mirror() -> str:
    """The Debian archive URL the host's apt uses (override: env IPIP6_LAB_MIRROR)."""
    env = os.environ.get("IPIP6_LAB_MIRROR")
    if env:
        return env
    for uri, suites in _apt_source_entries():
        if not uri.startswith(("http://", "https://")):
            continue
        if any(s in _DEBIAN_SUITES for s in suites):
            return uri.rstrip("/")
    raise ImageError(
        "no Debian mirror found in /etc/apt/sources.list{,.d/*.list,.d/*.sources}; "
        "set IPIP6_LAB_MIRROR to a Debian archive URL"
    )


# --- building ------------------------------------------------------------------------------


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, **kwargs)
    if proc.returncode != 0:
        raise ImageError(f"command failed (exit {proc.returncode}): {' '.join(cmd)}")
    return proc


def _essential_hook() -> str:
    """Shell run after the Essential packages, before the rest (and the kernel) install."""
    modules = "\\n".join(INITRAMFS_MODULES)
    return (
        "set -e; "
        'mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"; '
        'printf "MODULES=list\\n" > "$1/etc/initramfs-tools/conf.d/lab.conf"; '
        f'printf "{modules}\\n" > "$1/usr/share/initramfs-tools/modules.d/lab"; '
        'if [ -x "$1/usr/bin/debconf-set-selections" ]; then '
        f"printf '%s' '{DEBCONF_SELECTIONS}' | chroot \"$1\" debconf-set-selections; "
        "else echo 'lab: debconf missing in the essential stage' >&2; exit 1; fi"
    )


def _dpkg_excludes() -> list[str]:
    opts = []
    for prefix in ("/lib/modules", "/usr/lib/modules"):
        for d in MODULE_EXCLUDES:
            opts.append(f"--dpkgopt=path-exclude={prefix}/*/kernel/{d}/*")
    for pattern in DOC_EXCLUDES:
        opts.append(f"--dpkgopt=path-exclude={pattern}")
    return opts


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _customize(rootfs: Path, pubkey: str) -> None:
    """Configure the unpacked root file system (from the host, with chroot where needed)."""

    def chroot(*args: str) -> None:
        _run(["chroot", str(rootfs), *args])

    _write(rootfs / "etc/hostname", HOSTNAME + "\n")
    _write(rootfs / "etc/hosts", HOSTS)
    _write(rootfs / "etc/fstab", "/dev/vda / ext4 rw,errors=remount-ro 0 0\n")
    # a fixed machine-id: no first-boot logic (systemd-firstboot prompts) in the VMs
    _write(rootfs / "etc/machine-id", hashlib.md5(pubkey.encode()).hexdigest() + "\n", 0o444)
    _write(rootfs / "etc/netplan/50-lab.yaml", NETPLAN_YAML, 0o600)
    _write(rootfs / "etc/ssh/sshd_config.d/50-lab.conf", SSHD_CONFIG)
    _write(rootfs / "etc/sudoers.d/90-lab-ubuntu", "ubuntu ALL=(ALL) NOPASSWD:ALL\n", 0o440)

    # root: key only
    ssh_dir = rootfs / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    _write(ssh_dir / "authorized_keys", pubkey, 0o600)

    # ubuntu: like a cloud image's default user
    chroot("useradd", "--create-home", "--shell", "/bin/bash", "--groups", "sudo", "ubuntu")
    chroot("usermod", "--password", "*", "ubuntu")
    home = rootfs / "home/ubuntu/.ssh"
    home.mkdir(mode=0o700, exist_ok=True)
    _write(home / "authorized_keys", pubkey, 0o600)
    chroot("chown", "-R", "ubuntu:ubuntu", "/home/ubuntu/.ssh")

    # SSH host keys, made now so that clients can check them strictly
    chroot("ssh-keygen", "-A")

    units = rootfs / "etc/systemd/system"
    for unit in MASKED_UNITS:
        link = units / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    chroot("systemctl", "enable", "systemd-networkd.service")
    # Docker and fail2ban only where a test starts them: they would slow every boot under TCG.
    for unit in ("docker.service", "docker.socket", "containerd.service", "fail2ban.service"):
        chroot("systemctl", "disable", "--quiet", unit)
    _write(rootfs / "etc/fail2ban/jail.d/50-lab.conf", FAIL2BAN_JAIL)
    if (rootfs / "lib/systemd/system/systemd-resolved.service").exists() or (
        rootfs / "usr/lib/systemd/system/systemd-resolved.service"
    ).exists():
        chroot("systemctl", "enable", "systemd-resolved.service")
        resolv = rootfs / "etc/resolv.conf"
        if resolv.is_symlink() or resolv.exists():
            resolv.unlink()
        resolv.symlink_to("../run/systemd/resolve/stub-resolv.conf")

    # leave no build leftovers
    for leftover in ("var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin"):
        with contextlib.suppress(FileNotFoundError):
            (rootfs / leftover).unlink()


def _dir_size(path: Path) -> int:
    out = _run(["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True)
    return int(out.stdout.split()[0])


def build_image(suite: str, dest: Path, key: str = "") -> None:
    """Build the image for ``suite`` into the empty directory ``dest``."""
    if os.geteuid() != 0:
        raise ImageError("building the lab image needs root (mmdebstrap --mode=root, chroot)")
    for tool in ("mmdebstrap", "mkfs.ext4", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise ImageError(f"{tool} not found: run `python -m lab.host_packages` first")
    mirror = find_mirror()
    paths = ImagePaths.at(dest, suite, dest.name)
    rootfs = dest / "rootfs"
    t0 = time.monotonic()

    _run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ipip6-lab", "-f", str(paths.ssh_key)]
    )
    pubkey = paths.ssh_pubkey.read_text()

    cmd = [
        "mmdebstrap",
        "--variant=apt",
        "--mode=root",
        "--format=directory",
        "--components=main",
        "--include=" + ",".join(packages_for(suite)),
        *_dpkg_excludes(),
        "--essential-hook=" + _essential_hook(),
        suite,
        str(rootfs),
        mirror,
    ]
    _log(f"mmdebstrap {suite} ({len(packages_for(suite))} packages)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8")
    _run(cmd, env=env, stdin=subprocess.DEVNULL)
    t1 = time.monotonic()
    _log(f"mmdebstrap done in {t1 - t0:.0f} s; configuring")

    _customize(rootfs, pubkey)

    kernels = sorted(rootfs.glob("boot/vmlinuz-*"))
    initrds = sorted(rootfs.glob("boot/initrd.img-*"))
    if not kernels or not initrds:
        raise ImageError(f"no kernel/initrd in {rootfs}/boot")
    shutil.copyfile(kernels[-1], paths.kernel)
    shutil.copyfile(initrds[-1], paths.initrd)
    kernel_version = kernels[-1].name.removeprefix("vmlinuz-")

    host_pubs = sorted((rootfs / "etc/ssh").glob("ssh_host_*_key.pub"))
    if not host_pubs:
        raise ImageError("no SSH host keys in the image")
    paths.host_keys.write_text("".join(p.read_text() for p in host_pubs))

    used = _dir_size(rootfs)
    mib = 1 << 20
    size = ((used * 12 // 10 + 1024 * mib) // (64 * mib) + 1) * (64 * mib)
    _log(f"mkfs.ext4 -d: {used // mib} MiB of files into a {size // mib} MiB image")
    with open(paths.base, "wb") as f:
        f.truncate(size)
    _run(["mkfs.ext4", "-q", "-F", "-L", "vps-root", "-d", str(rootfs), str(paths.base)])
    shutil.rmtree(rootfs)
    paths.base.chmod(0o444)

    manifest = {
        "suite": suite,
        "key": key or dest.name,
        "kernel": kernel_version,
        "packages": packages_for(suite),
        "mirror": mirror,
        "image_bytes": size,
        "files_bytes": used,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.monotonic() - t0, 1),
    }
    paths.manifest.write_text(json.dumps(manifest, indent=2) + "\n")


@contextlib.contextmanager
def _lock(path: Path, what: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for another process building {what}…")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def image_paths(suite: str | None = None) -> ImagePaths:
    """Where the image of ``suite`` for the current recipe is (or would be) cached."""
    suite = suite or default_suite()
    key = f"{suite}-{recipe_hash(suite)}"
    return ImagePaths.at(cache_root() / key, suite, key)


def ensure_image(suite: str | None = None, rebuild: bool = False) -> ImagePaths:
    """Return the cached image of ``suite`` (default: env IPIP6_LAB_SUITE or bookworm),
    building it first when the recipe changed or nothing is cached."""
    suite = suite or default_suite()
    if suite not in SUITES:
        raise ImageError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    paths = image_paths(suite)
    if paths.complete() and not rebuild:
        _log(f"{suite} image cached: {paths.dir}")
        return paths
    root = cache_root()
    with _lock(root / f".lock-{suite}", f"the {suite} image"):
        if paths.complete() and not rebuild:
            _log(f"{suite} image cached: {paths.dir}")
            return paths
        tmp = root / f".build-{paths.key}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        _log(f"building {suite} image (about 1 minute) in {tmp}")
        t0 = time.monotonic()
        try:
            build_image(suite, tmp, paths.key)
            if paths.dir.exists():
                shutil.rmtree(paths.dir)
            tmp.rename(paths.dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _log(f"{suite} image built in {time.monotonic() - t0:.0f} s: {paths.dir}")
        # older recipes of the same suite are obsolete
        for old in root.glob(f"{suite}-*"):
            if old != paths.dir and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        for stale in root.glob(f".build-{suite}-*"):
            pid = stale.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(stale, ignore_errors=True)
    return ImagePaths.at(paths.dir, suite, paths.key)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.image", description=__doc__.split("\n")[0])
    ap.add_argument("--suite", default=None, choices=SUITES)
    ap.add_argument("--rebuild", action="store_true", help="build even when cached")
    ap.add_argument("--mirror", action="store_true", help="print the mirror URL and exit")
    args = ap.parse_args(argv)
    try:
        if args.mirror:
            print(find_mirror())
            return 0
        paths = ensure_image(args.suite, rebuild=args.rebuild)
    except ImageError as exc:
        print(f"[lab] ERROR: {exc}", file=sys.stderr)
        return 1
    print(paths.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
