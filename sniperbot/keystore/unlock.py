"""Where the keystore password comes from, and unlocking the keys a config names before a node starts.

**Password sources**, first found wins: ``--password-file FILE`` (its first line; a
trailing newline is not part of the password), the environment variable
:data:`PASSWORD_ENV`, a prompt on the controlling terminal (no echo). With none of them
(a service without a terminal) the command exits 2 saying how to give one. The
environment variable is removed from this process's environment as soon as it is read
(:func:`take_env_password`, which ``sniperbot run`` calls before anything else starts),
so no actor process inherits it; it stays readable in ``/proc/<node pid>/environ`` to
the same user and root, so ``--password-file`` (a 0600 file, or a systemd credential) is
the better choice for a service.

**Decision (sniperbot run):** the keystore is opened before any process starts when the
config names a key (a venue's ``keys``) *or* a password is given (``--password-file``
or the variable) and a keystore exists: a wrong password exits 2 even if no venue needs
a key yet, rather than being noticed the day one does.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from sniperbot.keystore.store import Credentials, Keystore, KeystoreError

PASSWORD_ENV = "SNIPERBOT_KEYSTORE_PASSWORD"


def keystore_dir(config: Any = None, override: str | Path | None = None) -> Path:
    """The keystore directory: ``override`` (``--keystore``), else ``[keystore] dir`` of ``config``."""
    if override:
        return Path(override).expanduser()
    from sniperbot.config import KeystoreSection

    section = getattr(config, "keystore", None) or KeystoreSection()
    return Path(section.dir).expanduser()


def read_password_file(path: str | Path) -> str:
    """The password in ``path``: its first line without the line end."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeystoreError(f"--password-file: no such file {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KeystoreError(
            f"--password-file: cannot read {path}: {getattr(e, 'strerror', None) or e}"
        ) from None
    password = text.split("\n", 1)[0].removesuffix("\r")
    if not password:
        raise KeystoreError(f"--password-file: {path} is empty")
    return password


def take_env_password(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Remove :data:`PASSWORD_ENV` from the environment and return it (None if unset or empty)."""
    env = os.environ if environ is None else environ
    return env.pop(PASSWORD_ENV, None) or None


def has_terminal() -> bool:
    """Whether this process has a controlling terminal to ask on."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def prompt_password(prompt: str = "keystore password: ") -> str | None:
    """Ask on the terminal without echo; None when there is no terminal."""
    if not has_terminal():
        return None
    return getpass.getpass(prompt)


def no_password_error(what: str) -> KeystoreError:
    """The error when no password source is available."""
    return KeystoreError(
        f"{what} needs the keystore password and there is no terminal to ask: "
        f"set {PASSWORD_ENV} or pass --password-file FILE"
    )


def key_names(config: Any) -> dict[str, tuple[str, str]]:
    """The keystore entries ``config`` names: field path -> (entry name, the kind the entry must hold or "").

    Each venue says which of its fields name entries (:meth:`VenueSection.keystore_entries`: a ccxt
    venue's ``keys``, holding its ``exchange``'s key; an evm venue's ``wallet`` and ``relay_auth``).
    """
    names: dict[str, tuple[str, str]] = {}
    for index, venue in enumerate(getattr(config, "venues", None) or ()):
        entries = getattr(venue, "keystore_entries", None)
        if entries is not None:
            named = entries()
        else:  # not a VenueSection (a plain record of keys and exchange): its ``keys`` field
            key = getattr(venue, "keys", "")
            named = {"keys": (key, getattr(venue, "exchange", "") or "")} if key else {}
        for field, entry in named.items():
            names[f"venues[{index}].{field}"] = entry
    return names


def unlock_for_config(
    config: Any,
    *,
    keystore: str | Path | None = None,
    password_file: str | Path | None = None,
    environ: MutableMapping[str, str] | None = None,
    interactive: bool = True,
) -> dict[str, Credentials]:
    """Unlock every key ``config`` names, before any process starts: ``{entry name: Credentials}``.

    Raises :class:`KeystoreError` (``sniperbot run`` exits 2) naming the config field
    for a missing entry, and :class:`~sniperbot.keystore.store.WrongPassword` for a
    wrong password. Always removes :data:`PASSWORD_ENV` from ``environ`` (default
    ``os.environ``), so no actor process inherits it. See the module docstring for
    when the keystore is opened.
    """
    env_password = take_env_password(environ)
    password = read_password_file(password_file) if password_file else env_password
    names = key_names(config)
    directory = keystore_dir(config, keystore)
    if not names:
        if password is not None and Keystore.exists(directory):
            Keystore.open(directory, password)  # a wrong password exits now, not the day a venue needs it
        return {}
    wanted = ", ".join(f"{field} = {name!r}" for field, (name, _) in names.items())
    if not Keystore.exists(directory):
        raise KeystoreError(
            f"{wanted}: no keystore at {directory} (sniperbot keys add NAME --exchange ID, "
            "or [keystore] dir / --keystore to point at it)"
        )
    if password is None and interactive:
        password = prompt_password()
    if password is None:
        raise no_password_error(wanted)
    store = Keystore.open(directory, password)
    present = set(store.names())
    unlocked: dict[str, Credentials] = {}
    for field, (name, exchange) in names.items():
        if name not in present:
            raise KeystoreError(
                f"{field}: no keystore entry named {name!r} in {directory} (sniperbot keys list)"
            )
        if name not in unlocked:
            unlocked[name] = store.get(name)
        if exchange and unlocked[name].exchange != exchange:
            raise KeystoreError(
                f"{field}: keystore entry {name!r} holds a {unlocked[name].exchange} key, "
                f"the venue needs one of kind {exchange}"
            )
    return unlocked
