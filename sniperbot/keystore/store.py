"""The encrypted keystore: one file per exchange API key, scrypt + AES-256-GCM.

**Layout.** A directory (mode 0700, default ``~/.sniperbot/keystore``, moved by
``[keystore] dir`` or ``--keystore DIR``) holding:

- ``keystore.json``: the *password verifier*. It encrypts a fixed text under a key
  derived from the password, so a wrong password is refused even when the keystore has
  no entry yet, and before any entry is touched.
- ``<name>.key``: one entry (mode 0600). Plain, readable metadata (``name``,
  ``exchange``, ``created``: not secret, ``sniperbot keys list`` shows them without the
  password) and the encrypted credential fields (ccxt's names: ``apiKey``, ``secret``,
  ``password``, ``uid``, ``privateKey``, ``walletAddress``, ...).
- ``.lock``: every operation holds an exclusive ``flock`` on it, so two ``sniperbot
  keys`` commands (or a command and a starting node) never interleave.

**Crypto.** Each file has its own random 16-byte salt and its own scrypt parameters, so
they can be raised later (a new entry or ``change-password`` uses the current
:data:`DEFAULT_SCRYPT`; old files still open with theirs). Defaults: ``n = 2**15, r = 8,
p = 1`` (32 MiB of memory and ~0.1 s per derivation: RFC 7914's interactive figure
raised to what the ``cryptography`` docs and OWASP recommend as a minimum; a node opens a
handful of entries at start, so the cost is paid once, and ``bench/keystore.py``
measures it). Cipher: AES-256-GCM (``cryptography``'s AESGCM), a random 12-byte nonce
per encryption (a key is derived per file and encrypts only once per salt). The
associated data is the file's whole header (format, version, name, exchange, created,
KDF parameters with salt, cipher): a name, exchange or date edited in the file, or two
files swapped or renamed, fail authentication instead of handing a key to the wrong
venue.

**Writes are atomic.** A file is written to a temporary name in the same directory,
fsynced, renamed into place and the directory fsynced: a crash leaves the old file or
the new one, never half of one.

**change-password** keeps both until done: (1) the new verifier is written to
``keystore.json.new``, then every entry re-encrypted to ``<name>.key.new``, all fsynced; (2) the
commit point is renaming ``keystore.json.new`` over ``keystore.json``; (3) each
``<name>.key.new`` is renamed over ``<name>.key``. Every later operation first finishes
or undoes an interrupted change (:meth:`Keystore._recover`): with ``keystore.json.new``
still there the change never committed and the ``.new`` files are deleted (the old
password opens everything); without it, the remaining ``.key.new`` files are renamed
into place (the new password opens everything). A crash at any point loses no entry.

**Errors** (:class:`KeystoreError`, the CLI exits 2): a wrong password
(:class:`WrongPassword`), a damaged or edited file (naming the file), a name already
present or unknown, a name outside :data:`sniperbot.config.ID_RULE` (no ``/``, no path
step), a directory or file readable by others (like ssh, the fix is named). A failing
operation changes nothing already stored. No message ever contains a secret.

**Not protected against**: a process of the same user that reads this one's memory
(deny ptrace), and Python strings, which cannot be wiped after use.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import os
import secrets
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from sniperbot.config import id_error

VERIFIER_FILE = "keystore.json"
ENTRY_SUFFIX = ".key"
PENDING_SUFFIX = ".new"  # change-password's not yet committed / not yet renamed files
LOCK_FILE = ".lock"
TEMP_SUFFIX = ".tmp"
CIPHER = "AES-256-GCM"
FORMAT_VERSION = 1
SALT_BYTES = 16
NONCE_BYTES = 12
KEY_BYTES = 32
MIN_PASSWORD_LEN = 8
_CHECK_TEXT = b"sniperbot keystore password check v1"
# Limits on parameters read from a file: a crafted file must not make us allocate gigabytes.
_MAX_SCRYPT_MEMORY = 1 << 30
_MAX_P = 16


class KeystoreError(Exception):
    """The keystore cannot do what was asked; the message names what and where, never a secret."""


class WrongPassword(KeystoreError):
    """The password does not open this keystore."""


class ScryptParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """scrypt parameters and salt, stored in every file (so they can be raised later)."""

    n: int
    r: int
    p: int
    salt: bytes = b""
    name: Literal["scrypt"] = "scrypt"

    def check(self, where: str) -> None:
        """Raise KeystoreError if the parameters are unusable or absurdly expensive."""
        ok = (
            self.n > 1
            and self.n & (self.n - 1) == 0
            and self.r >= 1
            and 1 <= self.p <= _MAX_P
            and 128 * self.n * self.r <= _MAX_SCRYPT_MEMORY
            and len(self.salt) == SALT_BYTES
        )
        if not ok:
            raise KeystoreError(
                f"{where}: unusable scrypt parameters n={self.n} r={self.r} p={self.p} "
                f"(n a power of 2, at most 1 GiB of memory, p <= {_MAX_P}, a {SALT_BYTES}-byte salt)"
            )

    def derive(self, password: str) -> bytes:
        """The 32-byte key for ``password`` under these parameters (the expensive step)."""
        kdf = Scrypt(salt=self.salt, length=KEY_BYTES, n=self.n, r=self.r, p=self.p)
        return kdf.derive(password.encode("utf-8"))

    def fresh(self) -> ScryptParams:
        """The same cost with a new random salt."""
        return msgspec.structs.replace(self, salt=secrets.token_bytes(SALT_BYTES))


# n = 2**15, r = 8, p = 1: 32 MiB, ~0.1 s (see the module docstring and bench/keystore.py).
DEFAULT_SCRYPT = ScryptParams(n=2**15, r=8, p=1)


class _VerifierFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``keystore.json``: proves a password right without any entry."""

    format: Literal["sniperbot-keystore"]
    version: Literal[1]
    created: str
    kdf: ScryptParams
    cipher: Literal["AES-256-GCM"]
    nonce: bytes
    check: bytes

    def associated_data(self) -> bytes:
        """Everything but the nonce and ciphertext, bound to the ciphertext."""
        return msgspec.json.encode([self.format, self.version, self.created, self.kdf, self.cipher])


class _EntryFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``<name>.key``: one exchange key; the header is plain and authenticated, the fields encrypted."""

    format: Literal["sniperbot-keystore-entry"]
    version: Literal[1]
    name: str
    exchange: str
    created: str
    kdf: ScryptParams
    cipher: Literal["AES-256-GCM"]
    nonce: bytes
    ciphertext: bytes

    def associated_data(self) -> bytes:
        """The whole header: name, exchange and created cannot be edited or swapped between files."""
        return msgspec.json.encode(
            [self.format, self.version, self.name, self.exchange, self.created, self.kdf, self.cipher]
        )


class EntryInfo(msgspec.Struct, frozen=True):
    """What ``keys list`` shows of an entry: never a secret."""

    name: str
    exchange: str
    created: str


class Secret:
    """A secret string whose repr, str and format show ``'**********'``; :meth:`reveal` gives it.

    It cannot be pickled or encoded by msgspec/json (they raise without the value), so it
    does not leave its process by accident.
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The secret in the clear: only for the library that signs with it."""
        return self._value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not pickled (see sniperbot.keystore: how secrets reach an actor)")


class Credentials:
    """One keystore entry, unlocked: the name, the exchange and its ccxt credential fields.

    ``repr``/``str`` show the name, exchange and field *names* only; pickle and msgspec
    refuse it. The clear values come out in two places only: :meth:`ccxt_config` (the
    dict ccxt's exchange constructor takes) and :meth:`to_launch` (bytes for the
    signing actor's launch, see the package docstring).
    """

    __slots__ = ("_fields", "created", "exchange", "name")

    def __init__(self, name: str, exchange: str, created: str, fields: Mapping[str, str | Secret]) -> None:
        self.name = name
        self.exchange = exchange
        self.created = created
        self._fields = {k: v if isinstance(v, Secret) else Secret(v) for k, v in fields.items()}

    @property
    def field_names(self) -> list[str]:
        """The credential field names held (``apiKey``, ``secret``, ...): not secret."""
        return list(self._fields)

    def __getitem__(self, field: str) -> Secret:
        return self._fields[field]

    def ccxt_config(self) -> dict[str, str]:
        """The fields in the clear, for ``getattr(ccxt, exchange)({**options, **ccxt_config()})``."""
        return {k: v.reveal() for k, v in self._fields.items()}

    def to_launch(self) -> bytes:
        """Encoded for the signing actor's ``ActorLaunch`` (forkserver pipe; never argv, env or log)."""
        return msgspec.msgpack.encode([self.name, self.exchange, self.created, self.ccxt_config()])

    @classmethod
    def from_launch(cls, data: bytes) -> Credentials:
        """Decode :meth:`to_launch` bytes inside the actor."""
        name, exchange, created, fields = msgspec.msgpack.decode(
            data, type=tuple[str, str, str, dict[str, str]]
        )
        return cls(name, exchange, created, fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (self.name, self.exchange, self.created, self._fields) == (
            other.name,
            other.exchange,
            other.created,
            other._fields,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Credentials(name={self.name!r}, exchange={self.exchange!r}, fields={self.field_names!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("Credentials are not pickled (see sniperbot.keystore: how secrets reach an actor)")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _encrypt(key: bytes, plaintext: bytes, associated: bytes) -> tuple[bytes, bytes]:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, associated)


def check_name(name: str) -> None:
    """Raise KeystoreError if ``name`` is not a valid entry name (the config's id grammar)."""
    error = id_error(name)
    if error is not None:
        raise KeystoreError(f"entry name {error}")


def check_new_password(password: str) -> None:
    """Raise KeystoreError if ``password`` is too weak to protect exchange keys."""
    if len(password) < MIN_PASSWORD_LEN:
        raise KeystoreError(f"the keystore password must have at least {MIN_PASSWORD_LEN} characters")


#: The entry kind (``exchange``) of an on-chain EVM wallet (``[[venues]] kind = "evm"``: ``wallet``,
#: ``relay_auth``): not a ccxt exchange id. Its fields: ``private_key`` (required: the account's secp256k1
#: key, 32 bytes in hex, ``0x`` optional) and ``relay_private_key`` (optional: a Flashbots reputation key,
#: same format; it holds no funds).
EVM_WALLET = "evm"
EVM_WALLET_FIELDS = ("private_key", "relay_private_key")
# secp256k1's group order: a private key is an integer in [1, n - 1].
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _check_evm_wallet(fields: Mapping[str, str]) -> None:
    """Raise KeystoreError unless ``fields`` are an EVM wallet's (never quoting a value)."""
    for field, value in fields.items():
        if field not in EVM_WALLET_FIELDS:
            raise KeystoreError(
                f"credential field {field!r} is not an {EVM_WALLET} wallet field "
                f"(known: {', '.join(EVM_WALLET_FIELDS)})"
            )
        digits = value.removeprefix("0x") if isinstance(value, str) else ""
        if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise KeystoreError(
                f"credential field {field!r} must be 32 bytes in hex (64 hex digits, 0x optional)"
            )
        if not 0 < int(digits, 16) < _SECP256K1_N:
            raise KeystoreError(f"credential field {field!r} is not a valid secp256k1 private key")
    if "private_key" not in fields:
        raise KeystoreError(f"{EVM_WALLET} needs the credential field(s) private_key")


#: The entry kind of an on-chain Solana wallet (``[[venues]] kind = "solana"``: ``wallet``). Its one field,
#: ``secret_key``, is the base58 text of the 64-byte ed25519 keypair (secret half, then public half), the
#: format Phantom and ``solana-keygen`` export; it is checked by decoding it into a keypair (the public
#: half must be the secret's), never quoted in an error.
SOLANA_WALLET = "solana"
SOLANA_WALLET_FIELDS = ("secret_key",)
#: The entry kinds that are on-chain wallets, not ccxt exchanges.
WALLET_KINDS = (EVM_WALLET, SOLANA_WALLET)


def _check_solana_wallet(fields: Mapping[str, str]) -> None:
    """Raise KeystoreError unless ``fields`` are a Solana wallet's (never quoting a value)."""
    for field, value in fields.items():
        if field not in SOLANA_WALLET_FIELDS:
            raise KeystoreError(
                f"credential field {field!r} is not a {SOLANA_WALLET} wallet field "
                f"(known: {', '.join(SOLANA_WALLET_FIELDS)})"
            )
        from solders.keypair import Keypair  # only when a Solana key is added

        try:
            Keypair.from_base58_string(value if isinstance(value, str) else "")
        except BaseException as e:  # pyo3 may raise a PanicException (a BaseException) on odd input
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            # Not the library's message: it can quote a character of the secret.
            raise KeystoreError(
                f"credential field {field!r} must be a base58 64-byte ed25519 keypair (secret key then "
                "its public key, as solana-keygen or a wallet's export gives it)"
            ) from None
    if "secret_key" not in fields:
        raise KeystoreError(f"{SOLANA_WALLET} needs the credential field(s) secret_key")


def check_credentials(exchange: str, fields: Mapping[str, str]) -> None:
    """Raise KeystoreError unless ``exchange`` is a ccxt exchange or a wallet kind and ``fields`` fit.

    Field names are ccxt's own (``Exchange.requiredCredentials``); every field the
    exchange marks required must be present and non-empty. An EVM wallet holds
    :data:`EVM_WALLET_FIELDS`, each a 32-byte private key in hex; a Solana wallet its ``secret_key``.
    """
    if exchange == EVM_WALLET:
        _check_evm_wallet(fields)
        return
    if exchange == SOLANA_WALLET:
        _check_solana_wallet(fields)
        return
    import ccxt  # slow import: only when adding a key

    check_exchange(exchange)
    known = list(ccxt.Exchange.requiredCredentials)
    for field, value in fields.items():
        if field not in known:
            raise KeystoreError(
                f"credential field {field!r} is not a ccxt credential (known: {', '.join(known)})"
            )
        if not isinstance(value, str) or not value:
            raise KeystoreError(f"credential field {field!r} must be a non-empty string")
    missing = [f for f in required_fields(exchange) if f not in fields]
    if missing:
        raise KeystoreError(f"{exchange} needs the credential field(s) {', '.join(missing)}")


def check_exchange(exchange: str) -> None:
    """Raise KeystoreError unless ``exchange`` is a ccxt exchange id or one of :data:`WALLET_KINDS`."""
    if exchange in WALLET_KINDS:
        return
    import ccxt

    if exchange not in ccxt.exchanges:
        raise KeystoreError(
            f"--exchange: {exchange!r} is not a ccxt exchange id (e.g. binance, coinbase, kraken) "
            f"nor {' or '.join(repr(k) for k in WALLET_KINDS)} (an on-chain wallet)"
        )


def required_fields(exchange: str) -> list[str]:
    """The credential fields ccxt says ``exchange`` requires, in ccxt's order (a wallet: its key)."""
    if exchange == EVM_WALLET:
        return ["private_key"]
    if exchange == SOLANA_WALLET:
        return ["secret_key"]
    import ccxt

    required = getattr(ccxt, exchange)().requiredCredentials
    return [field for field, needed in required.items() if needed]


class Keystore:
    """An opened (password-checked) keystore directory."""

    def __init__(self, directory: Path, password: str) -> None:
        """Use :meth:`open` or :meth:`create`."""
        self.directory = directory
        self.__password = password

    def __repr__(self) -> str:
        return f"Keystore({str(self.directory)!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a Keystore is not pickled")

    # -- opening -------------------------------------------------------------------------

    @staticmethod
    def exists(directory: str | Path) -> bool:
        """Whether ``directory`` holds a keystore (its password verifier)."""
        return (Path(directory).expanduser() / VERIFIER_FILE).exists()

    @classmethod
    def create(cls, directory: str | Path, password: str, kdf: ScryptParams = DEFAULT_SCRYPT) -> Keystore:
        """Make a new, empty keystore protected by ``password`` (the directory may exist, empty)."""
        path = Path(directory).expanduser()
        check_new_password(password)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            if not path.is_dir():
                raise KeystoreError(f"keystore {path}: exists and is not a directory") from None
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
        store = cls(path, password)
        with store._locked():
            if (path / VERIFIER_FILE).exists():
                raise KeystoreError(f"keystore {path}: already exists")
            store._write(path / VERIFIER_FILE, store._verifier(kdf))
        return store

    @classmethod
    def open(cls, directory: str | Path, password: str) -> Keystore:
        """Open the keystore at ``directory``; :class:`WrongPassword` if ``password`` does not open it."""
        path = Path(directory).expanduser()
        store = cls(path, password)
        with store._locked():
            store._check_password()
        return store

    @staticmethod
    def list_entries(directory: str | Path) -> tuple[list[EntryInfo], list[str]]:
        """Every entry's name, exchange and created (no password needed), and one error per bad file."""
        path = Path(directory).expanduser()
        store = Keystore(path, "")
        infos: list[EntryInfo] = []
        errors: list[str] = []
        with store._locked():
            for file in store._entry_files():
                try:
                    entry = store._read_entry(file)
                except KeystoreError as e:
                    errors.append(str(e))
                    continue
                infos.append(EntryInfo(entry.name, entry.exchange, entry.created))
        return infos, errors

    # -- entries ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The names of the stored entries, sorted."""
        with self._locked():
            return [f.name.removesuffix(ENTRY_SUFFIX) for f in self._entry_files()]

    def get(self, name: str) -> Credentials:
        """The unlocked entry ``name``."""
        check_name(name)
        with self._locked():
            file = self.directory / f"{name}{ENTRY_SUFFIX}"
            if not file.exists():
                raise KeystoreError(f"keystore {self.directory}: no entry named {name!r}")
            entry = self._read_entry(file)
            fields = self._decrypt_entry(entry, file)
        return Credentials(entry.name, entry.exchange, entry.created, fields)

    def add(self, name: str, exchange: str, fields: Mapping[str, str]) -> EntryInfo:
        """Store a new entry; refuses a name already present (nothing is overwritten)."""
        check_name(name)
        check_credentials(exchange, fields)
        with self._locked():
            self._check_password()
            file = self.directory / f"{name}{ENTRY_SUFFIX}"
            if file.exists():
                raise KeystoreError(
                    f"keystore {self.directory}: an entry named {name!r} already exists "
                    f"(sniperbot keys remove {name} first to replace it)"
                )
            entry = self._entry(name, exchange, _now(), dict(fields), DEFAULT_SCRYPT)
            self._write(file, entry, exclusive=True)
        return EntryInfo(name, exchange, entry.created)

    def remove(self, name: str) -> None:
        """Delete the entry ``name`` (a damaged one too: only the keystore password is checked)."""
        check_name(name)
        with self._locked():
            self._check_password()
            file = self.directory / f"{name}{ENTRY_SUFFIX}"
            if not file.exists():
                raise KeystoreError(f"keystore {self.directory}: no entry named {name!r}")
            file.unlink()
            self._fsync_dir()

    def change_password(self, new_password: str) -> None:
        """Re-encrypt every entry under ``new_password`` (see the module docstring: crash-safe)."""
        check_new_password(new_password)
        with self._locked():
            self._check_password()
            # Decrypt everything first: a damaged entry stops the change before any write.
            plain: list[tuple[Path, _EntryFile, dict[str, str]]] = []
            for file in self._entry_files():
                entry = self._read_entry(file)
                plain.append((file, entry, self._decrypt_entry(entry, file)))
            pending: list[tuple[Path, Path]] = []
            verifier = self.directory / VERIFIER_FILE
            new_verifier = verifier.with_name(VERIFIER_FILE + PENDING_SUFFIX)
            try:
                # The new verifier first: while it is pending, recovery undoes the change.
                self._write(new_verifier, self._verifier(DEFAULT_SCRYPT, new_password))
                for file, entry, fields in plain:
                    new = self._entry(
                        entry.name, entry.exchange, entry.created, fields, DEFAULT_SCRYPT, new_password
                    )
                    target = file.with_name(file.name + PENDING_SUFFIX)
                    self._write(target, new)
                    pending.append((target, file))
            except BaseException:
                self._undo_pending()
                raise
            # The commit point: from here on the new password opens the keystore.
            os.replace(new_verifier, verifier)
            self._fsync_dir()
            for target, file in pending:
                os.replace(target, file)
            self._fsync_dir()
            self.__password = new_password

    # -- internals ---------------------------------------------------------------------------

    def _verifier(self, kdf: ScryptParams, password: str | None = None) -> _VerifierFile:
        kdf = kdf.fresh()
        key = kdf.derive(self.__password if password is None else password)
        header = _VerifierFile("sniperbot-keystore", FORMAT_VERSION, _now(), kdf, CIPHER, b"", b"")
        nonce, check = _encrypt(key, _CHECK_TEXT, header.associated_data())
        return msgspec.structs.replace(header, nonce=nonce, check=check)

    def _entry(
        self,
        name: str,
        exchange: str,
        created: str,
        fields: dict[str, str],
        kdf: ScryptParams,
        password: str | None = None,
    ) -> _EntryFile:
        kdf = kdf.fresh()
        key = kdf.derive(self.__password if password is None else password)
        header = _EntryFile(
            "sniperbot-keystore-entry", FORMAT_VERSION, name, exchange, created, kdf, CIPHER, b"", b""
        )
        nonce, ciphertext = _encrypt(key, msgspec.json.encode(fields), header.associated_data())
        return msgspec.structs.replace(header, nonce=nonce, ciphertext=ciphertext)

    def _check_password(self) -> None:
        """Raise WrongPassword unless the verifier opens with our password (caller holds the lock)."""
        file = self.directory / VERIFIER_FILE
        if not file.exists():
            raise KeystoreError(
                f"keystore {self.directory}: no keystore here (create one with sniperbot keys add)"
            )
        verifier = self._decode(file, _VerifierFile)
        verifier.kdf.check(str(file))
        try:
            plain = AESGCM(verifier.kdf.derive(self.__password)).decrypt(
                verifier.nonce, verifier.check, verifier.associated_data()
            )
        except InvalidTag:
            raise WrongPassword(f"keystore {self.directory}: wrong password") from None
        if plain != _CHECK_TEXT:
            raise KeystoreError(f"{file}: damaged password verifier")

    def _decrypt_entry(self, entry: _EntryFile, file: Path) -> dict[str, str]:
        entry.kdf.check(str(file))
        try:
            plain = AESGCM(entry.kdf.derive(self.__password)).decrypt(
                entry.nonce, entry.ciphertext, entry.associated_data()
            )
        except InvalidTag:
            self._check_password()  # the password changed since we opened: say so
            raise KeystoreError(
                f"{file}: cannot be decrypted although the password is right: the file was "
                "damaged or edited (its name, exchange or date changed, or it comes from another "
                "keystore); remove it and add the key again"
            ) from None
        try:
            return msgspec.json.decode(plain, type=dict[str, str])
        except msgspec.DecodeError:
            raise KeystoreError(f"{file}: damaged entry (decrypted fields unreadable)") from None

    def _read_entry(self, file: Path) -> _EntryFile:
        entry = self._decode(file, _EntryFile)
        if f"{entry.name}{ENTRY_SUFFIX}" != file.name:
            raise KeystoreError(f"{file}: holds the entry {entry.name!r}: renamed or moved, not used")
        return entry

    def _decode(self, file: Path, kind: type[Any]) -> Any:
        self._check_mode(file, 0o600)
        try:
            data = file.read_bytes()
        except OSError as e:
            raise KeystoreError(f"{file}: cannot be read: {e.strerror}") from None
        try:
            return msgspec.json.decode(data, type=kind)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            # msgspec's message names the field, never a value of ours.
            raise KeystoreError(f"{file}: damaged keystore file ({e})") from None

    def _check_mode(self, path: Path, allowed: int) -> None:
        """Refuse a file or directory that others may read or that another user owns (like ssh)."""
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            raise KeystoreError(f"{path}: is a symbolic link: refused")
        if st.st_uid != os.getuid():
            raise KeystoreError(f"{path}: owned by another user (uid {st.st_uid}): refused")
        if st.st_mode & 0o777 & ~allowed:
            raise KeystoreError(
                f"{path}: permissions {stat.S_IMODE(st.st_mode):04o} are too open: chmod {allowed:o} {path}"
            )

    def _entry_files(self) -> list[Path]:
        return sorted(
            p
            for p in self.directory.iterdir()
            if p.name.endswith(ENTRY_SUFFIX) and not p.name.startswith(".")
        )

    def _write(self, file: Path, value: msgspec.Struct, exclusive: bool = False) -> None:
        """Write atomically: temporary file, fsync, rename (or link when ``exclusive``), fsync dir."""
        data = msgspec.json.encode(value)
        temp = file.with_name(f".{file.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            if exclusive:
                os.link(temp, file)  # fails if the name exists: never overwrites an entry
                temp.unlink()
            else:
                os.replace(temp, file)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _undo_pending(self) -> None:
        for p in self.directory.iterdir():
            if p.name.endswith(PENDING_SUFFIX):
                p.unlink()
        self._fsync_dir()

    def _recover(self) -> None:
        """Finish or undo an interrupted change-password; drop temporary files of a crashed write."""
        names = [p.name for p in self.directory.iterdir()]
        for name in names:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                (self.directory / name).unlink()
        if VERIFIER_FILE + PENDING_SUFFIX in names:
            self._undo_pending()  # never committed: the old password opens every old file
            return
        moved = False
        for name in names:
            if name.endswith(ENTRY_SUFFIX + PENDING_SUFFIX):
                os.replace(self.directory / name, self.directory / name.removesuffix(PENDING_SUFFIX))
                moved = True
        if moved:
            self._fsync_dir()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the keystore's lock, after checking the directory and recovering a crash."""
        if not self.directory.is_dir():
            raise KeystoreError(
                f"keystore {self.directory}: no such directory (create it with sniperbot keys add)"
            )
        self._check_mode(self.directory, 0o700)
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._recover()
            yield
        finally:
            os.close(fd)
