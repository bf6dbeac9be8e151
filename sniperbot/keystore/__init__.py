"""The encrypted keystore of exchange API keys, and how a secret reaches the one actor that signs.

Public API::

    store = Keystore.open(directory, password)     # WrongPassword before anything else
    creds = store.get("main")                      # Credentials: repr/str never show a secret
    exchange = ccxt.binance({**options, **creds.ccxt_config()})   # the only clear-text use
    unlock_for_config(config, password_file=...)  # what `sniperbot run` calls before any process

On disk and crash safety: :mod:`sniperbot.keystore.store`. Password sources and the
node's unlock: :mod:`sniperbot.keystore.unlock`. The ``keys`` command:
:mod:`sniperbot.keystore.cli`.

**How a secret reaches the signing actor** (wired by the venue that signs). The node
unlocks the keys before any process starts (:func:`unlock_for_config`), then puts
``credentials.to_launch()`` into that one actor's
:class:`~sniperbot.actors.runtime.ActorLaunch` (a ``bytes`` field, e.g.
``credentials: bytes = b""``), the same way the node life's ``auth_key`` travels: for
process placement the launch is msgpack bytes handed to the forkserver over its pipe,
not argv (``ps``) and not the environment (``/proc/<pid>/environ``); a thread actor gets
it in memory; a Ray actor as its constructor argument inside the cluster. Only the
executor/gateway of the venue whose ``keys`` name the entry gets it; no other actor's
launch carries it (the venue config says which entries: ``VenueSection.keystore_entries``; an
EVM venue's ``wallet``, an entry of kind ``evm`` holding ``private_key``). Inside the actor,
``Credentials.from_launch(launch.credentials)`` and
``ccxt_config()`` at the exchange's construction only. Rules for that actor: never log
or journal the launch, the exchange's config or its headers (ccxt's ``verbose = True``
prints signed request headers: never set it), and report exchange errors by class and
code, since a ccxt error may quote the request. ``Secret`` and ``Credentials`` cannot be
pickled or encoded by msgspec, so they do not travel anywhere else by accident.
"""

from sniperbot.keystore.store import (
    DEFAULT_SCRYPT,
    Credentials,
    EntryInfo,
    Keystore,
    KeystoreError,
    ScryptParams,
    Secret,
    WrongPassword,
)
from sniperbot.keystore.unlock import (
    PASSWORD_ENV,
    key_names,
    keystore_dir,
    read_password_file,
    unlock_for_config,
)

__all__ = [
    "DEFAULT_SCRYPT",
    "PASSWORD_ENV",
    "Credentials",
    "EntryInfo",
    "Keystore",
    "KeystoreError",
    "ScryptParams",
    "Secret",
    "WrongPassword",
    "key_names",
    "keystore_dir",
    "read_password_file",
    "unlock_for_config",
]
