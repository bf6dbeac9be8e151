"""Byte layouts of the Solana accounts the venue reads: SPL Token / Token-2022 mints and token accounts, and
the local pool; the constants every Solana module shares.

* **Mint** (SPL Token ``Pack`` layout, 82 bytes, little endian): ``COption<Pubkey> mint_authority`` (u32 tag
  + 32 bytes), ``u64 supply``, ``u8 decimals``, ``u8 is_initialized``, ``COption<Pubkey> freeze_authority``.
  A Token-2022 mint with extensions is zero-padded to 165 bytes (``Account::LEN``, so that a mint is never
  mistaken for a token account), then one ``AccountType`` byte (1 = mint, 2 = account), then TLV entries
  (``u16 type, u16 length, value``) until the data ends or a type 0 (``Uninitialized``) entry; an account
  that would be exactly 355 bytes (a multisig's size) gets 2 more zero bytes
  (``solana-program/token-2022`` ``interface/src/extension/mod.rs``: ``type_and_tlv_indices``,
  ``adjust_len_for_multisig``). Extension values are ``Pod`` structs; an optional key there is
  ``MaybeNull<Address>`` (32 bytes, all zero = none), unlike the 4-byte ``COption`` tag of the base mint.
* **Token account** (165 bytes): mint, owner, ``u64 amount``, ``COption<Pubkey> delegate``, ``u8 state``
  (0 uninitialized, 1 initialized, 2 frozen), ``COption<u64> is_native``, ``u64 delegated_amount``,
  ``COption<Pubkey> close_authority``; Token-2022 extensions follow from byte 166 as for a mint
  (:data:`ACCOUNT_EXTENSIONS`; ``transfer_fee_amount`` {withheld} is the fee withheld in the account).
* **Local pool** (:class:`PoolState`): no registry ships a compiled AMM program, so a local pool is an
  account owned by :data:`LOCAL_AMM_PROGRAM` (no program runs there) holding the pool's keys; its vaults are
  real token / system accounts the local aggregator moves funds through with the real programs.

:func:`decode_mint` names every Token-2022 extension it finds (names from
:data:`sniperbot.venues.dex.rules.MINT_EXTENSIONS`), with its fields where a check needs them:
``transfer_fee`` {bps, max (the fee in force at ``epoch``), authority, withdraw_authority, withheld,
older, newer}, ``transfer_hook`` {program, authority}, ``permanent_delegate`` {delegate},
``non_transferable`` {}, ``default_account_state`` {state}, ``mint_close_authority`` {authority},
``metadata_pointer`` / ``group_pointer`` / ``group_member_pointer`` {authority, address}, ``pausable``
{authority, paused}, ``token_metadata`` {update_authority, mint, name, symbol, uri}; other known types carry
{raw: hex}; a type this reader does not know is named ``unknown_<n>`` {raw: hex} (the safety check refuses
it). :func:`encode_mint` writes the same shapes back (the devchain builds trap mints with it).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from sniperbot.venues.dex.rules import MINT_EXTENSIONS

SOL_MINT = Pubkey.from_string("So11111111111111111111111111111111111111112")
"""The quote "mint" of native SOL (the wrapped-SOL mint's address)."""
LAMPORTS_PER_SOL = 1_000_000_000
TOKEN_PROGRAMS: dict[str, Pubkey] = {"token": TOKEN_PROGRAM_ID, "token-2022": TOKEN_2022_PROGRAM_ID}
"""The token program of each ``program`` name a :class:`Mint` carries."""

LOCAL_AMM_PROGRAM = Pubkey.from_string("7D5MzZciqoXJLtGjBw85QVp7RUJRtCGir5p5yGn2P2q9")
"""Owner of the local pools' accounts: sha256(b"sniperbot-local-amm"), a key nobody holds; no program runs."""

MINT_SIZE = 82
TOKEN_ACCOUNT_SIZE = 165
MULTISIG_SIZE = 355
_ACCOUNT_TYPE_MINT = 1
_ACCOUNT_TYPE_ACCOUNT = 2
_TLV_START = TOKEN_ACCOUNT_SIZE + 1

ACCOUNT_STATES: tuple[str, ...] = ("uninitialized", "initialized", "frozen")
"""Token account states by their byte (``AccountState``); also the ``default_account_state`` values."""

_EXTENSION_TYPES: dict[str, int] = {name: number for number, name in MINT_EXTENSIONS.items()}
# The Token-2022 extensions of a token account (ExtensionType numbers, as MINT_EXTENSIONS).
ACCOUNT_EXTENSIONS: dict[int, str] = {
    2: "transfer_fee_amount",
    5: "confidential_transfer_account",
    7: "immutable_owner",
    8: "memo_transfer",
    11: "cpi_guard",
    13: "non_transferable_account",
    15: "transfer_hook_account",
    17: "confidential_transfer_fee_amount",
    27: "pausable_account",
}


# -- the local pool ------------------------------------------------------------------------------------------

POOL_DISCRIMINATOR = b"sbpool01"
POOL_STATE_SIZE = 178
_POOL = struct.Struct("<8s32s32s32s32s32sHQ")
assert _POOL.size == POOL_STATE_SIZE


@dataclass(frozen=True)
class PoolState:
    """A local pool account (owned by :data:`LOCAL_AMM_PROGRAM`, 178 bytes).

    ``base_vault`` is a token account of ``base_mint`` whose owner is ``authority``; ``quote_vault`` is a
    system account whose lamports above the rent exemption of 0 bytes are the SOL reserve; ``fee_bps`` is
    the share of the input the pool keeps; ``created_slot`` the slot the pool was created in.
    """

    base_mint: Pubkey
    quote_mint: Pubkey
    base_vault: Pubkey
    quote_vault: Pubkey
    authority: Pubkey
    fee_bps: int = 30
    created_slot: int = 0

    def encode(self) -> bytes:
        """The account data (178 bytes)."""
        if not 0 <= self.fee_bps <= 10_000:
            raise ValueError(f"PoolState.fee_bps: must be within 0..10000, got {self.fee_bps}")
        return _POOL.pack(
            POOL_DISCRIMINATOR,
            bytes(self.base_mint),
            bytes(self.quote_mint),
            bytes(self.base_vault),
            bytes(self.quote_vault),
            bytes(self.authority),
            self.fee_bps,
            self.created_slot,
        )

    @classmethod
    def decode(cls, data: bytes) -> PoolState:
        """The pool in account ``data``; ValueError names what is wrong (size, discriminator, fee)."""
        data = bytes(data)
        if len(data) != POOL_STATE_SIZE:
            raise ValueError(f"pool account: {len(data)} bytes, a PoolState has {POOL_STATE_SIZE}")
        disc, base_mint, quote_mint, base_vault, quote_vault, authority, fee_bps, slot = _POOL.unpack(data)
        if disc != POOL_DISCRIMINATOR:
            raise ValueError(
                f"pool account: discriminator {disc!r}, a PoolState starts {POOL_DISCRIMINATOR!r}"
            )
        if fee_bps > 10_000:
            raise ValueError(f"pool account: fee_bps {fee_bps} > 10000")
        return cls(
            base_mint=Pubkey(base_mint),
            quote_mint=Pubkey(quote_mint),
            base_vault=Pubkey(base_vault),
            quote_vault=Pubkey(quote_vault),
            authority=Pubkey(authority),
            fee_bps=fee_bps,
            created_slot=slot,
        )


# -- mints ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mint:
    """A decoded SPL Token or Token-2022 mint; ``extensions`` by name (see the module docstring)."""

    supply: int
    decimals: int
    mint_authority: Pubkey | None
    freeze_authority: Pubkey | None
    program: str = "token"
    extensions: dict[str, Any] = field(default_factory=dict)
    is_initialized: bool = True


@dataclass(frozen=True)
class TokenAccount:
    """A decoded token account; ``state`` one of :data:`ACCOUNT_STATES`."""

    mint: Pubkey
    owner: Pubkey
    amount: int
    state: str = "initialized"
    delegate: Pubkey | None = None
    delegated_amount: int = 0
    is_native: int | None = None
    close_authority: Pubkey | None = None
    extensions: dict[str, Any] = field(default_factory=dict)


def _coption_key(data: bytes, offset: int, what: str) -> Pubkey | None:
    (tag,) = struct.unpack_from("<I", data, offset)
    if tag == 0:
        return None
    if tag != 1:
        raise ValueError(f"{what}: COption tag {tag} (0 or 1 expected)")
    return Pubkey(data[offset + 4 : offset + 36])


def _put_coption_key(key: Pubkey | None) -> bytes:
    return struct.pack("<I", 0) + bytes(32) if key is None else struct.pack("<I", 1) + bytes(key)


def _maybe_key(raw: bytes) -> Pubkey | None:
    return None if raw == bytes(32) else Pubkey(raw)


def _put_maybe_key(key: Pubkey | str | None) -> bytes:
    if key is None:
        return bytes(32)
    return bytes(Pubkey.from_string(key) if isinstance(key, str) else key)


def _tlv(data: bytes, what: str) -> list[tuple[int, bytes]]:
    """The (type, value) TLV entries of a Token-2022 mint or account from byte 166 on."""
    entries, i = [], _TLV_START
    while i + 2 <= len(data):
        (typ,) = struct.unpack_from("<H", data, i)
        if typ == 0:  # Uninitialized: the end of the entries (or the multisig-length padding)
            break
        if i + 4 > len(data):
            raise ValueError(f"{what}: TLV entry at byte {i} has no length")
        (length,) = struct.unpack_from("<H", data, i + 2)
        if i + 4 + length > len(data):
            raise ValueError(f"{what}: TLV entry type {typ} at byte {i} runs past the data ({length} bytes)")
        entries.append((typ, bytes(data[i + 4 : i + 4 + length])))
        i += 4 + length
    return entries


def _fee(raw: bytes) -> dict[str, int]:
    epoch, maximum, bps = struct.unpack("<QQH", raw)
    return {"epoch": epoch, "bps": bps, "max": maximum}


def _borsh_str(raw: bytes, i: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", raw, i)
    if i + 4 + n > len(raw):
        raise ValueError("string past the end")
    return raw[i + 4 : i + 4 + n].decode("utf-8", "replace"), i + 4 + n


def _extension(typ: int, raw: bytes, epoch: int | None) -> tuple[str, dict[str, Any]]:
    """The name and fields of one mint TLV entry; a value of the wrong size raises ValueError."""
    name = MINT_EXTENSIONS.get(typ, f"unknown_{typ}")
    sizes = {
        "transfer_fee": 108,
        "transfer_hook": 64,
        "permanent_delegate": 32,
        "mint_close_authority": 32,
        "non_transferable": 0,
        "default_account_state": 1,
        "metadata_pointer": 64,
        "group_pointer": 64,
        "group_member_pointer": 64,
        "pausable": 33,
    }
    if name in sizes and len(raw) != sizes[name]:
        raise ValueError(f"mint extension {name}: {len(raw)} bytes, {sizes[name]} expected")
    if name == "transfer_fee":
        older, newer = _fee(raw[72:90]), _fee(raw[90:108])
        if epoch is None:  # the epoch is unknown: the higher fee (when in doubt, the worse)
            in_force = max(older, newer, key=lambda f: (f["bps"], f["max"]))
        else:
            in_force = newer if epoch >= newer["epoch"] else older
        return name, {
            "bps": in_force["bps"],
            "max": in_force["max"],
            "authority": _maybe_key(raw[0:32]),
            "withdraw_authority": _maybe_key(raw[32:64]),
            "withheld": struct.unpack_from("<Q", raw, 64)[0],
            "older": older,
            "newer": newer,
        }
    if name == "transfer_hook":
        return name, {"authority": _maybe_key(raw[0:32]), "program": _maybe_key(raw[32:64])}
    if name == "permanent_delegate":
        return name, {"delegate": _maybe_key(raw)}
    if name == "mint_close_authority":
        return name, {"authority": _maybe_key(raw)}
    if name == "non_transferable":
        return name, {}
    if name == "default_account_state":
        state = raw[0]
        return name, {"state": ACCOUNT_STATES[state] if state < len(ACCOUNT_STATES) else f"unknown_{state}"}
    if name in ("metadata_pointer", "group_pointer", "group_member_pointer"):
        return name, {"authority": _maybe_key(raw[0:32]), "address": _maybe_key(raw[32:64])}
    if name == "pausable":
        return name, {"authority": _maybe_key(raw[0:32]), "paused": raw[32] != 0}
    if name == "token_metadata":
        try:
            fields: dict[str, Any] = {"update_authority": _maybe_key(raw[0:32]), "mint": Pubkey(raw[32:64])}
            i = 64
            for key in ("name", "symbol", "uri"):
                fields[key], i = _borsh_str(raw, i)
            return name, fields
        except (ValueError, struct.error):
            pass  # a malformed metadata entry is kept raw: it is informational only
    return name, {"raw": raw.hex()}


def decode_mint(data: bytes, owner: Pubkey, *, epoch: int | None = None) -> Mint:
    """The mint in account ``data`` owned by token program ``owner``; ValueError names what is wrong.

    ``epoch`` (the cluster's current epoch) picks the Token-2022 transfer fee in force (a fee change takes
    effect at its ``newer.epoch``); without it the higher of the two is reported.
    """
    data = bytes(data)
    if owner == TOKEN_PROGRAM_ID:
        program = "token"
        if len(data) != MINT_SIZE:
            raise ValueError(f"mint: {len(data)} bytes, an SPL Token mint has {MINT_SIZE}")
    elif owner == TOKEN_2022_PROGRAM_ID:
        program = "token-2022"
        if len(data) != MINT_SIZE and (len(data) < _TLV_START or len(data) == MULTISIG_SIZE):
            raise ValueError(f"mint: {len(data)} bytes is not the size of a Token-2022 mint")
    else:
        raise ValueError(f"mint: owned by {owner}, not a token program (SPL Token or Token-2022)")
    mint_authority = _coption_key(data, 0, "mint.mint_authority")
    supply, decimals, initialized = struct.unpack_from("<QBB", data, 36)
    freeze_authority = _coption_key(data, 46, "mint.freeze_authority")
    if not initialized:
        raise ValueError("mint: not initialized")
    extensions: dict[str, Any] = {}
    if len(data) > MINT_SIZE:
        if any(data[MINT_SIZE:TOKEN_ACCOUNT_SIZE]):
            raise ValueError("mint: the padding between the mint and its extensions is not zero")
        if data[TOKEN_ACCOUNT_SIZE] != _ACCOUNT_TYPE_MINT:
            raise ValueError(f"mint: account type {data[TOKEN_ACCOUNT_SIZE]}, not a mint (1)")
        for typ, raw in _tlv(data, "mint"):
            name, value = _extension(typ, raw, epoch)
            extensions[name] = value
    return Mint(
        supply=supply,
        decimals=decimals,
        mint_authority=mint_authority,
        freeze_authority=freeze_authority,
        program=program,
        extensions=extensions,
        is_initialized=True,
    )


def _key_of(value: Any, field_name: str) -> Pubkey | None:
    """A key given as a Pubkey, a base58 string, None, or a one-field dict ``{field_name: key}``."""
    if isinstance(value, Mapping):
        value = value.get(field_name)
    if value is None or isinstance(value, Pubkey):
        return value
    if isinstance(value, str):
        return Pubkey.from_string(value)
    raise ValueError(f"{field_name}: {value!r} is not a public key")


def _encode_fee(fee: Mapping[str, Any]) -> bytes:
    return struct.pack("<QQH", int(fee.get("epoch", 0)), int(fee["max"]), int(fee["bps"]))


def _encode_extension(name: str, value: Any) -> bytes:
    """The TLV value bytes of mint extension ``name`` from its decoded shape (or the short forms)."""
    if isinstance(value, Mapping) and "raw" in value:
        return bytes.fromhex(value["raw"])
    if name == "transfer_fee":
        v = dict(value)
        for key in ("bps", "max"):
            if key not in v and "older" not in v:
                raise ValueError(f"extensions.transfer_fee: {key!r} is required")
        if not 0 <= int(v.get("bps", 0)) <= 10_000:
            raise ValueError(f"extensions.transfer_fee.bps: must be within 0..10000, got {v['bps']}")
        older = v.get("older") or {"epoch": 0, "bps": v["bps"], "max": v["max"]}
        newer = v.get("newer") or older
        return (
            _put_maybe_key(v.get("authority"))
            + _put_maybe_key(v.get("withdraw_authority"))
            + struct.pack("<Q", int(v.get("withheld", 0)))
            + _encode_fee(older)
            + _encode_fee(newer)
        )
    if name == "transfer_hook":
        if not isinstance(value, Mapping):
            value = {"program": value}
        return _put_maybe_key(_key_of(value.get("authority"), "authority")) + _put_maybe_key(
            _key_of(value.get("program"), "program")
        )
    if name == "permanent_delegate":
        return _put_maybe_key(_key_of(value, "delegate"))
    if name == "mint_close_authority":
        return _put_maybe_key(_key_of(value, "authority"))
    if name == "non_transferable":
        return b""
    if name == "default_account_state":
        state = value.get("state") if isinstance(value, Mapping) else value
        if state not in ACCOUNT_STATES[1:]:
            raise ValueError(f"extensions.default_account_state: {state!r}, not 'initialized' or 'frozen'")
        return bytes([ACCOUNT_STATES.index(state)])
    if name in ("metadata_pointer", "group_pointer", "group_member_pointer"):
        return _put_maybe_key(_key_of(value.get("authority"), "authority")) + _put_maybe_key(
            _key_of(value.get("address"), "address")
        )
    if name == "pausable":
        return _put_maybe_key(_key_of(value.get("authority"), "authority")) + bytes(
            [bool(value.get("paused"))]
        )
    if name == "token_metadata":
        out = _put_maybe_key(_key_of(value.get("update_authority"), "update_authority"))
        out += bytes(_key_of(value.get("mint"), "mint") or Pubkey(bytes(32)))
        for key in ("name", "symbol", "uri"):
            text = str(value.get(key, "")).encode()
            out += struct.pack("<I", len(text)) + text
        return out + struct.pack("<I", 0)  # no additional metadata
    raise ValueError(f"extensions.{name}: cannot be encoded from {value!r} (give {{'raw': hex}})")


def encode_mint(
    *,
    supply: int = 0,
    decimals: int = 6,
    mint_authority: Pubkey | None = None,
    freeze_authority: Pubkey | None = None,
    program: str = "token",
    extensions: Mapping[str, Any] | None = None,
) -> bytes:
    """The account data of an initialized mint: 82 bytes, or a Token-2022 mint with ``extensions`` (TLV).

    ``extensions`` by name, in the shapes :func:`decode_mint` returns or the short forms
    ``transfer_fee={"bps", "max"}``, ``transfer_hook={"program"}``, ``permanent_delegate=<key>``,
    ``non_transferable={}``, ``default_account_state="frozen"``, ``mint_close_authority=<key>``.
    """
    if program not in TOKEN_PROGRAMS:
        raise ValueError(f"program: {program!r}, not one of {list(TOKEN_PROGRAMS)}")
    if extensions and program != "token-2022":
        raise ValueError(f"extensions: only a token-2022 mint has extensions (program {program!r})")
    if not 0 <= decimals <= 255:
        raise ValueError(f"decimals: must be within 0..255, got {decimals}")
    base = (
        _put_coption_key(mint_authority)
        + struct.pack("<QBB", supply, decimals, 1)
        + _put_coption_key(freeze_authority)
    )
    if not extensions:
        return base
    tlv = b""
    for name, value in extensions.items():
        if name.startswith("unknown_"):
            typ = int(name.removeprefix("unknown_"))
        elif name in _EXTENSION_TYPES:
            typ = _EXTENSION_TYPES[name]
        else:
            raise ValueError(f"extensions: {name!r} is not a mint extension ({sorted(_EXTENSION_TYPES)})")
        raw = _encode_extension(name, value)
        tlv += struct.pack("<HH", typ, len(raw)) + raw
    data = base + bytes(TOKEN_ACCOUNT_SIZE - MINT_SIZE) + bytes([_ACCOUNT_TYPE_MINT]) + tlv
    if len(data) == MULTISIG_SIZE:  # never the size of a multisig (the program's own adjustment)
        data += bytes(2)
    return data


# -- token accounts ------------------------------------------------------------------------------------------


def decode_token_account(data: bytes) -> TokenAccount:
    """The token account in ``data`` (SPL Token or Token-2022); ValueError names what is wrong."""
    data = bytes(data)
    if len(data) < TOKEN_ACCOUNT_SIZE or len(data) == MULTISIG_SIZE:
        raise ValueError(f"token account: {len(data)} bytes is not the size of a token account")
    if len(data) > TOKEN_ACCOUNT_SIZE and data[TOKEN_ACCOUNT_SIZE] != _ACCOUNT_TYPE_ACCOUNT:
        raise ValueError(f"token account: account type {data[TOKEN_ACCOUNT_SIZE]}, not a token account (2)")
    (amount,) = struct.unpack_from("<Q", data, 64)
    delegate = _coption_key(data, 72, "token_account.delegate")
    state = data[108]
    if state >= len(ACCOUNT_STATES):
        raise ValueError(f"token account: state {state} (0..2 expected)")
    native_tag, native, delegated = struct.unpack_from("<IQQ", data, 109)
    extensions: dict[str, Any] = {}
    if len(data) > TOKEN_ACCOUNT_SIZE:
        for typ, raw in _tlv(data, "token account"):
            name = ACCOUNT_EXTENSIONS.get(typ, f"unknown_{typ}")
            if name == "transfer_fee_amount" and len(raw) == 8:
                extensions[name] = {"withheld": struct.unpack("<Q", raw)[0]}
            else:
                extensions[name] = {} if not raw else {"raw": raw.hex()}
    return TokenAccount(
        mint=Pubkey(data[0:32]),
        owner=Pubkey(data[32:64]),
        amount=amount,
        state=ACCOUNT_STATES[state],
        delegate=delegate,
        delegated_amount=delegated,
        is_native=native if native_tag == 1 else None,
        close_authority=_coption_key(data, 129, "token_account.close_authority"),
        extensions=extensions,
    )


def encode_token_account(account: TokenAccount) -> bytes:
    """The 165 bytes of a plain token account (no Token-2022 extensions)."""
    native = (
        struct.pack("<IQ", 0, 0) if account.is_native is None else struct.pack("<IQ", 1, account.is_native)
    )
    return (
        bytes(account.mint)
        + bytes(account.owner)
        + struct.pack("<Q", account.amount)
        + _put_coption_key(account.delegate)
        + bytes([ACCOUNT_STATES.index(account.state)])
        + native
        + struct.pack("<Q", account.delegated_amount)
        + _put_coption_key(account.close_authority)
    )
