"""Install the host packages the QEMU lab needs, only when some are missing.

Usage: ``python -m lab.host_packages`` (exit 0 when everything is present or got installed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# Debian package -> a command it provides (checked when dpkg-query is not available).
PACKAGES: dict[str, str] = {
    "qemu-system-x86": "qemu-system-x86_64",
    "qemu-utils": "qemu-img",
    "mmdebstrap": "mmdebstrap",
    "zstd": "zstd",
    "e2fsprogs": "mkfs.ext4",
    "openssh-client": "ssh",
    "iproute2": "ip",
    # present on nearly every Debian system, but mmdebstrap --mode=root cannot do without them
    "mount": "mount",
    "debian-archive-keyring": "true",
}


class HostPackagesError(RuntimeError):
    pass


def _log(msg: str) -> None:
    print(f"[lab] {msg}", flush=True)


def missing_packages(packages: list[str] | None = None) -> list[str]:
    """Return the packages (of ``packages``, default: all the lab needs) not installed."""
    packages = list(packages or PACKAGES)
    if shutil.which("dpkg-query") is None:
        return [p for p in packages if shutil.which(PACKAGES.get(p, p)) is None]
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *packages],
        capture_output=True,
        text=True,
    )
    installed = set()
    for line in proc.stdout.splitlines():
        parts = line.split()
        # "ii " = installed and configured
        if len(parts) >= 2 and parts[1] == "ii":
            installed.add(parts[0].split(":")[0])
    return [p for p in packages if p not in installed]


def _run(cmd: list[str], env: dict[str, str]) -> None:
    _log("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise HostPackagesError(f"command failed with exit code {proc.returncode}: {' '.join(cmd)}")


def ensure_host_packages(packages: list[str] | None = None, quiet: bool = False) -> list[str]:
    """Install the missing lab host packages with apt-get; return what was installed.

    Raises HostPackagesError with a readable reason when that is impossible.
    """
    missing = missing_packages(packages)
    if not missing:
        if not quiet:
            _log("host packages present: " + " ".join(packages or PACKAGES))
        return []
    _log("missing host packages: " + " ".join(missing))
    if shutil.which("apt-get") is None:
        raise HostPackagesError(
            "these packages are missing and there is no apt-get to install them: "
            + " ".join(missing)
        )
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise HostPackagesError(
                "not root and no sudo: install these packages by hand: " + " ".join(missing)
            )
        prefix = ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _log("running apt-get update")
    _run([*prefix, "apt-get", "-q", "update"], env)
    _log("installing: " + " ".join(missing))
    _run(
        [
            *prefix,
            "apt-get",
            "-q",
            "-y",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            "install",
            "--no-install-recommends",
            *missing,
        ],
        env,
    )
    still = missing_packages(packages)
    if still:
        raise HostPackagesError("still missing after apt-get install: " + " ".join(still))
    _log("host packages installed: " + " ".join(missing))
    return missing


def main(argv: list[str] | None = None) -> int:
    """``python -m lab.host_packages [PACKAGE ...]``: the lab's packages, or the ones named."""
    names = sys.argv[1:] if argv is None else argv
    try:
        ensure_host_packages(names or None)
    except HostPackagesError as exc:
        print(f"[lab] ERROR: cannot install the lab's host packages: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
