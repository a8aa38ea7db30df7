"""pyinfra operations for the VPS end: a real Linux host reached over SSH.

Each operation compares what the host has with what the settings render, on the controller,
changes only what differs, and then does the least that makes the change live. With ``--diff``
each prints a unified diff of the files it would change before it yields anything, so
``--dry --diff`` previews exactly.

What the host has is read once for all the operations (:class:`~ipip6.vps.facts.VpsState`,
one command): each operation asks for the same read and takes its part. A read is kept until
an operation changes something on the host, so a no-op run sends one command, and a changing
run reads again after each change (a later operation never decides on what an earlier one
changed).
"""

from __future__ import annotations

import hashlib
import logging
import shlex
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from io import StringIO
from pathlib import PurePosixPath

from pyinfra import host, logger
from pyinfra.api import (
    FileUploadCommand,
    FunctionCommand,
    OperationError,
    State,
    StringCommand,
    operation,
)
from pyinfra.api.host import Host
from pyinfra.facts.files import FileContents
from pyinfra.operations import apt

from ipip6.settings import SettingsError, VpsSettings
from ipip6.vps import render
from ipip6.vps.conflicts import conflicts
from ipip6.vps.facts import VpsState
from ipip6.vps.guard import (
    DROP_OWNED_IPTABLES,
    DROP_OWNED_NFT,
    IPTABLES_POLICIES_ACCEPT,
    Guard,
    firewall_restore_script,
    firewall_snapshot,
    legacy_rules_removal,
    new_token,
    tunnel_restore_script,
    tunnel_snapshot,
)
from operations.diff import show_diff

#: What the VPS needs installed. iputils-ping: the router's check by traffic before it saves
#: pings home from here. No iptables-persistent: ipip6-firewall.service loads the deploy's
#: chains (an installed one stays, and keeps loading its own files for the user).
REQUIRED_PACKAGES = ("iptables", "kmod", "iproute2", "iputils-ping")
UNIT = shlex.quote(render.FIREWALL_UNIT)


def required_packages(settings: VpsSettings) -> list[str]:
    """What this VPS needs installed (nftables too with that backend)."""
    return [
        *REQUIRED_PACKAGES,
        *(["nftables"] if settings.firewall_backend == "nftables" else []),
    ]


_RETRY_PAUSE = 2.0


def state_query(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()) -> dict:
    """What :class:`~ipip6.vps.facts.VpsState` is asked for this VPS: every operation's files,
    guards and packages, so that one read serves them all (the same for every operation, or
    the read is not shared)."""
    tunnels = list(tunnels or (settings,))
    paths = [
        *(path for t in tunnels for path in render.render_tunnel_units(t).files()),
        render.SYSCTL_FILE,
        render.MODULES_FILE,
        # Both backends' files whichever is chosen: the other's, if there, are to go. Named,
        # not rendered: every operation builds this query, only the firewall needs the rules.
        *render.IPTABLES_FILES,
        *render.NFTABLES_FILES,
    ]
    return {
        "netdev_glob": render.OWNED_NETDEV_GLOB,
        "packages": tuple(required_packages(settings)),
        "paths": tuple(dict.fromkeys(paths)),
        "owned_globs": tuple(render.OWNED_UNIT_GLOBS),
        "timers": tuple(Guard(name, 0).unit for name in ("tunnel", "firewall")),
        "headed": (render.LEGACY_RULES_V4, render.LEGACY_RULES_V6),
        "line_in": (render.NFTABLES_CONF, render.NFT_INCLUDE),
    }


# The last read of each host: (the state, its stage, the query) → what it returned.
_READS: weakref.WeakKeyDictionary[Host, tuple[tuple, dict]] = weakref.WeakKeyDictionary()


def _vps_state(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()) -> dict:
    """The host's :class:`~ipip6.vps.facts.VpsState`, read once per pyinfra stage and again
    after a change (:func:`_changing`)."""
    query = state_query(settings, tunnels)
    key = (id(host.state), host.state.current_stage, tuple(sorted(query.items())))
    kept = _READS.get(host)
    if kept is not None and kept[0] == key:
        return kept[1]
    found = host.get_fact(VpsState, **query)
    _READS[host] = (key, found)
    return found


def _changing() -> None:
    """Called as an operation yields its first command: when that runs, the read is stale."""
    if host.state.is_executing:
        _READS.pop(host, None)


def _sha256(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def _changed(files: dict[str, str], sums: dict[str, str | None]) -> list[str]:
    return [path for path, content in files.items() if sums.get(path) != _sha256(content)]


def _show_diff(path: str, content: str) -> None:
    """Print a unified diff of one file, current → desired, when ``--diff`` is on."""
    if not host.state.config.DIFF:
        return
    current = host.get_fact(FileContents, path=path)
    title = f"{'Will create' if current is None else 'Will change'} {path}"
    show_diff(title, current or [], content.splitlines())


# What makes pyinfra run a command as another user (sudo, su, doas, dzdo).
_BECOME = ("_sudo", "_su_user", "_doas", "_dzdo")


def _place(files: Mapping[str, str], mode: str) -> tuple[list[FileUploadCommand], str]:
    """Files to put on the VPS: their uploads (pyinfra's own, over SFTP: no command) and the
    shell step that puts them in place with ``mode``, for the command that follows.

    Logged in as root, each file goes straight to its place. Under sudo (or su, doas) SFTP
    writes as the login user only: pyinfra would then copy each file from a temporary one and
    remove that, two commands of their own per file. Here the temporary files (fresh random
    names in ``/tmp``, or pyinfra's ``TEMP_DIR``) are installed and removed by the step.
    """
    become = host.current_op_global_arguments or {}
    if not any(become.get(key) for key in _BECOME):
        uploads = [FileUploadCommand(StringIO(text), dest) for dest, text in files.items()]
        return uploads, f"chmod {mode} " + " ".join(shlex.quote(p) for p in files)
    folder = host.state.config.TEMP_DIR or "/tmp"
    temps = {dest: f"{folder}/ipip6-upload-{uuid.uuid4().hex}" for dest in files}
    as_login_user = {"_sudo": False, "_su_user": None, "_doas": False, "_dzdo": False}
    uploads = [
        FileUploadCommand(StringIO(text), temps[dest], **as_login_user)
        for dest, text in files.items()
    ]
    install = " && ".join(
        f"install -m {mode} {shlex.quote(temps[dest])} {shlex.quote(dest)}" for dest in files
    )
    cleanup = "rm -f " + " ".join(shlex.quote(t) for t in temps.values())
    return uploads, f"{{ {install}; }}; rc=$?; {cleanup}; [ $rc = 0 ]"


def _mkdirs(paths: Sequence[str]) -> str:
    folders = dict.fromkeys(str(PurePosixPath(p).parent) for p in paths)
    return "mkdir -p " + " ".join(shlex.quote(f) for f in folders)


def _chain(*steps: str) -> StringCommand:
    """One command of several shell steps, stopping at the first that fails (each in braces,
    so a step's own ``||`` stays its own)."""
    return StringCommand(" && ".join(f"{{ {step}; }}" for step in steps))


def _wait_for_link(name: str) -> str:
    """Wait for networkd to (re)create the tunnel and check the one setting that matters."""
    quoted = shlex.quote(name)
    return (
        f"for i in $(seq 1 100); do ip link show dev {quoted} >/dev/null 2>&1 && break; "
        "sleep 0.1; done; "
        f"ip -d link show dev {quoted} | grep -q 'encaplimit none' || "
        f"{{ echo 'tunnel {name} is missing or lacks encaplimit none' >&2; "
        f"ip -d link show dev {quoted} >&2; exit 1; }}"
    )


def _try_new_connection(state: State, host: Host, token: str) -> str | None:
    """One attempt: connect afresh, leave ``token``. Returns why it failed, or None."""
    connector = host.connector_cls(state, host)
    # A refused connection is an expected answer here: keep paramiko's thread from printing
    # its traceback; the outcome is reported by the caller and by the next command.
    transport_log = logging.getLogger("paramiko.transport")
    level = transport_log.level
    transport_log.setLevel(logging.CRITICAL)
    try:
        connector.connect()
        ok, _ = connector.run_shell_command(
            StringCommand("touch", shlex.quote(token)), print_output=False, print_input=False
        )
        return None if ok else "it opened but could not run a command"
    except Exception as exc:  # any failure to reach the host is the answer we are after
        return str(exc)
    finally:
        client = getattr(connector, "client", None)
        if client is not None:
            client.close()  # joins paramiko's transport thread, whose last words we silence
        transport_log.setLevel(level)


def _confirm_over_new_connection(state: State, host: Host, token: str, budget: float) -> bool:
    """Open a fresh SSH connection (same data, new TCP flow) and leave ``token`` through it.

    Retried for ``budget`` seconds: right after systemd-networkd restarts, the uplink can refuse
    a connection for a moment. Never fails the operation itself: the next command, over the old
    connection, looks for the token and commits or rolls back. pyinfra's own connector is used,
    so the new connection is made exactly as the first one was (keys, known_hosts, port).
    """
    deadline = time.monotonic() + budget
    while True:
        problem = _try_new_connection(state, host, token)
        if problem is None:
            return True
        if time.monotonic() + _RETRY_PAUSE >= deadline:
            host.log(f"a new SSH connection failed: {problem}", logger.error)
            return True
        time.sleep(_RETRY_PAUSE)


def _guarded(
    guard: Guard, prepare: list, restore: str, apply: list, then: Sequence[str] = ()
) -> list:
    """The commands of one guarded change: ``prepare`` (an earlier run's unconfirmed change
    rolled back first, the rollback copy kept), the ``restore`` script uploaded and the timer
    armed, ``apply``, prove over a new connection, commit (``then``) or roll back."""
    token = new_token()
    # Half the rollback delay: the proof must be in before the timer could fire.
    budget = guard.seconds / 2
    uploads, place = _place({guard.script: restore}, "700")
    return [
        *prepare,
        *uploads,
        _chain(place, guard.arm()),
        *apply,
        FunctionCommand(_confirm_over_new_connection, (token, budget), {}),
        StringCommand(guard.confirm_or_restore(token, then)),
    ]


@operation(is_idempotent=True)
def checks(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()):
    """
    Refuse data that is valid on paper but wrong for this VPS, before anything is changed.

    + settings: the host's validated :class:`~ipip6.settings.VpsSettings`
    + tunnels: every tunnel the VPS carries (:meth:`~ipip6.tunnels.TunnelInventory.vps_tunnels`;
      default: the one of ``settings``)

    The deploy's one read (:class:`~ipip6.vps.facts.VpsState`) looks at the interfaces, the
    IPv4 addresses and default gateways, the tunnels this project created, and the port this
    SSH connection arrived on. Refused, with nothing changed: a
    ``tunnel_name`` an interface already has that this deploy did not create (the deploy would
    delete it), an ``uplink_interface`` that does not exist, a home network holding the VPS's
    own address or gateway, a firewall that would close the port of this connection.

    **Example:**

    .. code:: python

        vps.checks(settings=settings)  # first, before the operations that change things
    """
    network = _vps_state(settings, tunnels)["network"]
    problems = list(
        dict.fromkeys(p for t in (tunnels or (settings,)) for p in conflicts(t, network))
    )
    if problems:
        message = f"{SettingsError(host.name, problems)}\nNothing was changed."
        if not host.state.is_executing:
            # While pyinfra prepares (change detection, --dry): stops the run before any host
            # runs anything.
            raise OperationError(message)
        # With -y pyinfra prepares as it executes: fail this host only, at its first operation
        # (a router paired with it then changes nothing either).
        yield FunctionCommand(_refuse, (message,), {})
        return
    host.noop("nothing on the VPS conflicts with the data")


def _refuse(state: State, host: Host, message: str) -> bool:  # noqa: ARG001 - pyinfra's call
    host.log(message, logger.error)
    return False


@operation()
def packages(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()):
    """
    Install what the VPS end needs, only when something is missing.

    + settings: the host's validated :class:`~ipip6.settings.VpsSettings`
    + tunnels: every tunnel the VPS carries (only to share the deploy's one read; default:
      the one of ``settings``)

    ``apt-get update`` runs only when a package is missing, so a host with everything in place
    (or with no route to a mirror) needs no network. An active ufw is disabled when
    ``replace_ufw`` is set; otherwise its chains and the deploy's coexist.

    **Example:**

    .. code:: python

        vps.packages(settings=settings, tunnels=tunnels)
    """
    required = required_packages(settings)
    state = _vps_state(settings, tunnels)["packages"]
    missing = [name for name in required if not state["installed"].get(name)]
    disable_ufw = state["ufw_active"] and settings.replace_ufw
    if state["ufw_active"] and not disable_ufw and settings.firewall_backend == "nftables":
        # Each table's base chains must accept a packet: ufw's DROP policy would drop the
        # tunnel itself unless ufw were told about it.
        raise OperationError(
            f"{host.name}: ufw is active, and with firewall_backend 'nftables' its DROP policy "
            "would drop what the deploy's table lets in (the tunnel, SSH): set replace_ufw: "
            "true to have the deploy disable ufw, or firewall_backend: iptables to keep it."
        )
    if not missing and not disable_ufw:
        host.noop("packages " + ", ".join(required) + " are installed")
        return
    _changing()
    if disable_ufw:
        yield "ufw --force disable"
    if missing:
        yield from apt.packages._inner(packages=missing, update=True)


@operation()
def tunnel(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()):
    """
    Place each tunnel's ip6tnl ``.netdev`` and ``.network`` (and the optional netplan drop-in),
    remove units this project placed under another tunnel name (a site removed, a tunnel
    renamed), and make the live links match.

    + settings: the host's validated :class:`~ipip6.settings.VpsSettings`
    + tunnels: every tunnel the VPS carries, one per router (default: the one of ``settings``)

    networkd never re-creates an existing link from a changed ``.netdev``: when it or the
    drop-in changed, that link (only) is deleted and systemd-networkd restarted. A changed
    ``.network`` alone is reloaded (``networkctl reload``, systemd 244+; a restart before that).
    One fact reads every tunnel's files, however many there are.

    **Example:**

    .. code:: python

        tunnels = TunnelInventory.of(state).vps_tunnels(host.name)
        vps.tunnel(settings=tunnels[0], tunnels=tunnels)
    """
    tunnels = list(tunnels or (settings,))
    units = [render.render_tunnel_units(t) for t in tunnels]
    files = {path: text for u in units for path, text in u.files().items()}
    guard = Guard("tunnel", settings.rollback_after_seconds)
    found = _vps_state(settings, tunnels)["files"]
    # An armed timer: an earlier run died unconfirmed and its rollback will change the files
    # under us, so rewrite them all rather than trust the sums.
    pending = guard.unit in found["pending"]
    changed = list(files) if pending else _changed(files, found["sums"])
    stale = sorted(set(found["owned"]) - set(files))
    names = [t.tunnel_name for t in tunnels]
    if not changed and not stale:
        host.noop(f"tunnel {', '.join(names)} units are up to date")
        return

    for path in changed:
        _show_diff(path, files[path])
    for path in stale:
        host.log(f"Will remove {path} (no longer in the data)", logger.info)

    # Links of removed .netdev files must go too: networkd leaves them behind.
    old_links = [
        PurePosixPath(p).stem.removeprefix("60-ipip6-") for p in stale if p.endswith(".netdev")
    ]
    recreated = [
        t.tunnel_name
        for t, u in zip(tunnels, units, strict=True)
        if pending
        or u.netdev[0] in changed
        or (u.uplink_dropin is not None and u.uplink_dropin[0] in changed)
    ]
    recreate = bool(recreated) or any(not p.endswith(".network") for p in stale)
    reconfigured = [
        t.tunnel_name for t, u in zip(tunnels, units, strict=True) if u.network[0] in changed
    ]

    # The files go up first (their folders made before the timer is armed), then one command
    # sets their mode and makes them live.
    uploads, place = _place({path: files[path] for path in changed}, "644")
    steps = [place] if changed else []
    if stale:
        steps.append("rm -f " + " ".join(shlex.quote(p) for p in stale))
        for folder in sorted({str(PurePosixPath(p).parent) for p in stale if ".network.d/" in p}):
            steps.append(f"rmdir --ignore-fail-on-non-empty {shlex.quote(folder)}")
    if recreate:
        steps += [
            f"ip link del dev {shlex.quote(link)} 2>/dev/null || true"
            for link in [*recreated, *old_links]
        ]
        steps.append("systemctl restart systemd-networkd")
    else:
        quoted = " ".join(shlex.quote(n) for n in reconfigured)
        then = f"networkctl reconfigure {quoted}" if reconfigured else "true"
        steps.append(
            f"if networkctl reload 2>/dev/null; then {then}; "
            "else systemctl restart systemd-networkd; fi"
        )
    steps += [_wait_for_link(n) for n in names]
    apply = [*uploads, _chain(*steps)]

    # Restarting networkd reconfigures the uplink too (and the drop-in mode edits it): guard it.
    # A rollback re-creates the links this change touched (from the restored units, whatever
    # the change left on them); the other sites' links stay as they are.
    touched = list(dict.fromkeys([*recreated, *reconfigured, *old_links]))
    restore = tunnel_restore_script(render.OWNED_UNIT_GLOBS, touched)
    prepare = [
        _chain(
            guard.recover_pending(),
            tunnel_snapshot(render.OWNED_UNIT_GLOBS),
            *([_mkdirs(changed)] if changed else []),
        )
    ]
    _changing()
    yield from _guarded(guard, prepare, restore, apply)


@operation()
def sysctls(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()):
    """
    Place the sysctl file and the ``nf_conntrack`` modules-load entry; apply them live when
    either changed.

    + settings: the host's validated :class:`~ipip6.settings.VpsSettings`
    + tunnels: every tunnel the VPS carries (their rp_filter; default: the one of ``settings``)

    ``net.netfilter.nf_conntrack_max`` exists only once ``nf_conntrack`` is loaded; at boot
    systemd-sysctl runs early, so without the modules-load entry the value is silently lost.

    **Example:**

    .. code:: python

        vps.sysctls(settings=settings)
    """
    files = {
        render.SYSCTL_FILE: render.render_sysctl(settings, tunnels),
        render.MODULES_FILE: render.render_modules_load(settings),
    }
    found = _vps_state(settings, tunnels)["files"]
    changed = _changed(files, found["sums"])
    if not changed:
        host.noop("sysctl and modules-load files are up to date")
        return
    for path in changed:
        _show_diff(path, files[path])
    _changing()
    uploads, place = _place({path: files[path] for path in changed}, "644")
    yield from uploads
    yield _chain(
        place,
        "modprobe nf_conntrack",
        f"sysctl -q -p {shlex.quote(render.SYSCTL_FILE)}",
    )


@operation()
def firewall(settings: VpsSettings, tunnels: Sequence[VpsSettings] = ()):
    """
    Place the deploy's own firewall rules for ``firewall_backend`` and load them, only when
    something changed.

    + settings: the host's validated :class:`~ipip6.settings.VpsSettings`
    + tunnels: every tunnel the VPS carries, one per router (default: the one of ``settings``)

    ``iptables``: the rules live in ``IPIP6-*`` chains of their own (``/etc/ipip6/firewall.v4``
    and ``.v6``, loaded with ``iptables-restore --noflush`` by ``ipip6-firewall.service`` at
    boot, before the network), each reached by one jump appended to its base chain.
    ``nftables``: in ``table inet ipip6`` (``/etc/ipip6/firewall.nft``, included from
    ``/etc/nftables.conf``). Either way Docker's, fail2ban's, ufw's and the user's rules are
    never flushed or reordered.

    The new files are uploaded beside the live ones and checked first (loaded into an empty
    network namespace; ``nft -c``): a ruleset the kernel rejects changes nothing. The change is
    loaded, proven by a new SSH connection and only then persisted; unproven, the deploy's part
    (only) is rolled back. The same guarded run replaces the other backend's layout when
    ``firewall_backend`` changed, and the whole-ruleset ``/etc/iptables/rules.v4``/``.v6`` of
    earlier releases (recognised by their header): their rules are deleted one by one, the
    files removed once the new rules are proven.

    **Example:**

    .. code:: python

        vps.firewall(settings=settings, tunnels=tunnels)
    """
    files = render.render_firewall(settings, tunnels)
    nft = settings.firewall_backend == "nftables"
    other = render.IPTABLES_FILES if nft else render.NFTABLES_FILES
    guard = Guard("firewall", settings.rollback_after_seconds)
    legacy_files = (render.LEGACY_RULES_V4, render.LEGACY_RULES_V6)
    found = _vps_state(settings, tunnels)["files"]
    # An armed timer: an earlier run died unconfirmed; the live rules are not the files'.
    pending = guard.unit in found["pending"]
    changed = list(files) if pending else _changed(files, found["sums"])
    leaving = [path for path in other if found["sums"].get(path) is not None]
    legacy = [path for path in legacy_files if path in found["headed"]]
    include = found["line_found"]
    # Beyond the backend's own files: another layout to take down, or the include to mend.
    relayout = bool(leaving or legacy) or include != nft
    if not changed and not relayout:
        host.noop(f"firewall ({settings.firewall_backend}) is up to date")
        return
    for path in changed:
        _show_diff(path, files[path])
    for path in leaving:
        host.log(f"Will remove {path} (firewall_backend is {settings.firewall_backend})")
    for path in legacy:
        host.log(f"Will replace {path} (an earlier release's whole ruleset)", logger.info)
    if include != nft:
        verb = "add" if nft else "remove"
        host.log(f"Will {verb} `{render.NFT_INCLUDE}` in {render.NFTABLES_CONF}", logger.info)
    _changing()
    if changed == [render.FIREWALL_UNIT_FILE] and not relayout:
        # Only the unit changed: nothing to load, nothing that could cut the VPS off.
        uploads, place = _place({p: files[p] for p in changed}, "644")
        yield from uploads
        yield _chain(
            place,
            f"systemctl daemon-reload && systemctl enable --quiet {UNIT}",
        )
        return

    # Every file is loaded from its candidate, so a changed loader is proven too.
    candidates = {path: f"{path}.ipip6-new" for path in files}
    restore_commands = {render.LEGACY_RULES_V4: "iptables", render.LEGACY_RULES_V6: "ip6tables"}
    cleanup = " ".join(shlex.quote(c) for c in candidates.values())
    uploads, place = _place({c: files[p] for p, c in candidates.items()}, "640")
    prepare: list = [
        _chain(guard.recover_pending(), f"mkdir -p {shlex.quote(render.FIREWALL_DIR)}"),
        *uploads,
        _chain(
            place,
            # A ruleset the kernel rejects changes nothing: not the files, not the live rules.
            f"{{ {_firewall_check(candidates, nft)}; }} || {{ echo 'the kernel rejected the "
            f"new rules; nothing was changed' >&2; rm -f {cleanup}; exit 1; }}",
            firewall_snapshot(),
        ),
    ]
    restore = firewall_restore_script(
        candidates.values(), [(f"{restore_commands[p]}-restore", p) for p in legacy]
    )
    steps = [_firewall_load(candidates, nft)]
    if nft:  # before the old chains go: never a moment with DROP and no accept in that table
        steps.append(IPTABLES_POLICIES_ACCEPT)
    if leaving:
        steps.append(DROP_OWNED_IPTABLES if nft else DROP_OWNED_NFT)
    steps += [legacy_rules_removal(restore_commands[p], p) for p in legacy]
    # A load the kernel refuses after all: the previous rules at once, not when the timer fires.
    apply = [
        StringCommand(
            "{ " + " && ".join(f"{{ {step}; }}" for step in steps) + "; } || { "
            f"systemctl stop {shlex.quote(guard.unit)}.timer; sh {shlex.quote(guard.script)}; "
            "echo 'loading the new rules failed: the previous ones are back' >&2; exit 1; }"
        )
    ]
    # Persisted only once a new connection got through: a reboot never loads unproven rules.
    persist = [f"mv -f {shlex.quote(c)} {shlex.quote(p)}" for p, c in candidates.items()]
    persist.append("chmod 644 " + " ".join(shlex.quote(p) for p in candidates))
    persist += _firewall_persist(nft, leaving, include)
    if legacy:
        persist.append("rm -f " + " ".join(shlex.quote(p) for p in legacy))
    yield from _guarded(guard, prepare, restore, apply, then=persist)


_CHECK_NS = "ipip6-check"


def _firewall_check(candidates: dict[str, str], nft: bool) -> str:
    """Shell that exits 0 only if the kernel takes the candidate rules."""
    if nft:
        return f"nft -c -f {shlex.quote(candidates[render.FIREWALL_NFT])}"
    # Loaded for real into an empty network namespace: iptables-nft-restore --test passes a
    # misspelled target or a jump to a missing chain; a load does not.
    v4, v6, loader = (
        shlex.quote(candidates[p])
        for p in (render.FIREWALL_V4, render.FIREWALL_V6, render.FIREWALL_LOADER)
    )
    return (
        f"ip netns del {_CHECK_NS} 2>/dev/null; ip netns add {_CHECK_NS} && "
        f"ip netns exec {_CHECK_NS} sh {loader} {v4} {v6}; rc=$?; "
        f"ip netns del {_CHECK_NS} 2>/dev/null; [ $rc = 0 ]"
    )


def _firewall_load(candidates: dict[str, str], nft: bool) -> str:
    if nft:
        return f"nft -f {shlex.quote(candidates[render.FIREWALL_NFT])}"
    return " ".join(
        shlex.quote(part)
        for part in (
            "sh",
            candidates[render.FIREWALL_LOADER],
            candidates[render.FIREWALL_V4],
            candidates[render.FIREWALL_V6],
        )
    )


_NFT_INCLUDE_COMMENT = "# pyinfra-ipip6: the deploy's table (table inet ipip6)"


def _firewall_persist(nft: bool, leaving: list[str], include: bool) -> list[str]:
    """After the proof: make the backend's rules the ones loaded at boot, and the other
    backend's files (if any) go."""
    conf = shlex.quote(render.NFTABLES_CONF)
    out = []
    if nft:
        if not include:
            lines = " ".join(shlex.quote(x) for x in ("", _NFT_INCLUDE_COMMENT, render.NFT_INCLUDE))
            out.append(f"printf '%s\\n' {lines} >> {conf}")
        out.append("systemctl enable --quiet nftables.service")
        if leaving:
            out += [
                f"systemctl disable --quiet {UNIT}",
                "rm -f " + " ".join(shlex.quote(p) for p in leaving),
                "systemctl daemon-reload",
            ]
        return out
    out.append(f"systemctl daemon-reload && systemctl enable --quiet {UNIT}")
    if leaving:
        out.append("rm -f " + " ".join(shlex.quote(p) for p in leaving))
    if include:
        for line in (_NFT_INCLUDE_COMMENT, render.NFT_INCLUDE):
            pattern = shlex.quote("\\|^" + line + "$|d")
            out.append(f"sed -i {pattern} {conf}")
    return out
