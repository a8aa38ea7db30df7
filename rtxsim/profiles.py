"""Model profiles: what differs between the simulated routers.

Only facts the simulator needs: banner and ``show config`` header text, interface and tunnel
counts, which commands exist, and which SSH algorithms the server offers.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    name: str
    model: str
    revision: str
    build_date: str
    copyright_years: str
    macs: tuple[str, ...]
    serial: str
    hw_ver: str
    memory: str
    lan_count: int
    tunnel_max: int
    pp_max: int
    #: Extra command families this firmware knows (see ``model.SPECS`` ``feature=``).
    features: frozenset[str] = field(default_factory=frozenset)
    #: SSH algorithm lists offered by the server (``None`` keeps paramiko's default list).
    kex: tuple[str, ...] | None = None
    key_types: tuple[str, ...] | None = None
    ciphers: tuple[str, ...] | None = None
    digests: tuple[str, ...] | None = None
    #: Modern SSH extensions (RFC 8308 server-sig-algs, strict kex); old firmware has neither.
    ssh_extensions: bool = True

    @property
    def version_line(self) -> str:
        return f"{self.model} Rev.{self.revision} ({self.build_date})"

    @property
    def main_line(self) -> str:
        macs = " ".join(f"MAC-Address={m}" for m in self.macs)
        return f"main:  {self.model} ver={self.hw_ver} serial={self.serial} {macs}"


RTX1200 = Profile(
    name="rtx1200",
    model="RTX1200",
    revision="10.01.78",
    build_date="Mon Jan 27 16:42:45 2020",
    copyright_years="1994-2020",
    macs=("00:a0:de:00:12:01", "00:a0:de:00:12:02", "00:a0:de:00:12:03"),
    serial="D2Z000001",
    hw_ver="b0",
    memory="Memory 128Mbytes, 3LAN, 1BRI",
    lan_count=3,
    tunnel_max=100,
    pp_max=100,
    features=frozenset(),
    # RTX810 (real report) offers only these; RTX1200 is older [inferred].
    kex=("diffie-hellman-group1-sha1",),
    key_types=("ssh-rsa",),
    ciphers=("aes128-cbc", "aes256-cbc", "3des-cbc"),
    digests=("hmac-sha1", "hmac-md5"),
    ssh_extensions=False,
)

RTX830 = Profile(
    name="rtx830",
    model="RTX830",
    revision="15.02.30",
    build_date="Tue Oct 10 11:04:53 2023",
    copyright_years="1994-2023",
    macs=("ac:44:f2:00:83:01", "ac:44:f2:00:83:02"),
    serial="S5Z000001",
    hw_ver="00",
    memory="Memory 256Mbytes, 2LAN",
    lan_count=2,
    tunnel_max=20,
    pp_max=10,
    features=frozenset({"endpoint-local-remote"}),
    kex=(
        "curve25519-sha256@libssh.org",
        "ecdh-sha2-nistp256",
        "ecdh-sha2-nistp384",
        "ecdh-sha2-nistp521",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group14-sha256",
    ),
    key_types=("rsa-sha2-512", "rsa-sha2-256"),
    ciphers=("aes128-ctr", "aes192-ctr", "aes256-ctr", "aes128-gcm@openssh.com"),
    digests=("hmac-sha2-256", "hmac-sha2-512"),
    ssh_extensions=True,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (RTX1200, RTX830)}


def get_profile(name: str | Profile) -> Profile:
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
