"""Tokens for tests and benches on a local chain: SPL Token and Token-2022 mints (with the extensions that
trap buyers), balances, the holders' associated token accounts.

Every function takes a ``chain``: any object with ``svm`` (a solders ``LiteSVM``), ``lock`` (guarding
``svm``) and ``set_account(pubkey, Account)`` - the local chain
(:class:`sniperbot.venues.solana.devchain.LocalSolana`, whose ``set_account`` also notifies subscribers, as
its ``notify_changed`` does for what is written through ``svm``) or
:class:`InProcessChain` (a bare LiteSVM, for tests that need no RPC server).

A mint is written by layout (:func:`sniperbot.venues.solana.layouts.encode_mint`) and ``set_account``, as
the real programs would have initialised it; from then on the REAL token programs run over it: an
associated token account is created by the real associated-token program (so a Token-2022 account gets
the extensions its mint asks for, and starts frozen under a default-frozen mint), transfers are the real
program's (a transfer fee is withheld, a transfer hook to a program that is not deployed fails every
transfer, as a trap would, a non-transferable token never moves). Balances are allocated by writing the
account's amount and the mint's supply (a genesis allocation, like anvil's storage writes): a mint whose
authority is renounced has nobody to sign a MintTo, and a default-frozen account could not receive one.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from solders.account import Account
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from spl.token.instructions import create_idempotent_associated_token_account, get_associated_token_address

from sniperbot.venues.solana.layouts import (
    TOKEN_PROGRAMS,
    decode_mint,
    decode_token_account,
    encode_mint,
)

_FEE_PAYER_LAMPORTS = 1_000_000_000  # pays the rent of one associated token account, many times over


class Chain(Protocol):
    """What the token helpers need of a chain: the SVM, its lock, and account writes."""

    svm: LiteSVM
    lock: Any

    def set_account(self, pubkey: Pubkey, account: Account) -> None:
        """Write ``account`` at ``pubkey``."""


class InProcessChain:
    """A bare LiteSVM (the real token programs, no RPC server) with the :class:`Chain` interface."""

    def __init__(self, svm: LiteSVM | None = None) -> None:
        self.svm = svm if svm is not None else LiteSVM()
        self.lock = threading.RLock()

    def set_account(self, pubkey: Pubkey, account: Account) -> None:
        """Write ``account`` at ``pubkey``."""
        with self.lock:
            self.svm.set_account(pubkey, account)


def _extensions(extensions: Mapping[str, Any], freeze_authority: Pubkey | None) -> dict[str, Any]:
    """The test's extension shorthands in the layout's shapes; a hook program defaults to an undeployed id."""
    out: dict[str, Any] = {}
    for name, value in extensions.items():
        if name == "transfer_hook":
            value = dict(value) if isinstance(value, Mapping) else {"program": value}
            if value.get("program") is None:
                value["program"] = Keypair().pubkey()  # nothing deployed there: every transfer fails
        elif name == "permanent_delegate" and value is True:
            value = Keypair().pubkey()
        elif name == "non_transferable":
            value = {}
        elif name == "default_account_state":
            state = value.get("state") if isinstance(value, Mapping) else value
            if state == "frozen" and freeze_authority is None:
                # The real program refuses it (MintCannotFreeze): such a mint cannot exist on a chain.
                raise ValueError("extensions.default_account_state: 'frozen' needs a freeze_authority")
        out[name] = value
    return out


def create_mint(
    chain: Chain,
    *,
    decimals: int = 6,
    mint_authority: Keypair | None = None,
    freeze_authority: Pubkey | None = None,
    program: str = "token",
    extensions: Mapping[str, Any] | None = None,
) -> Pubkey:
    """A new initialised mint (supply 0) at a fresh address; Token-2022 ``extensions`` by name.

    ``extensions``: ``transfer_fee={"bps", "max"}``, ``transfer_hook={"program"}`` (default: a program id
    that is not deployed), ``permanent_delegate=<Pubkey>`` (or True: a fresh key), ``non_transferable=True``,
    ``default_account_state="frozen"`` (needs ``freeze_authority``, as on a real chain),
    ``mint_close_authority=<Pubkey>``, or any shape :func:`~sniperbot.venues.solana.layouts.encode_mint`
    takes. ``program`` becomes "token-2022" when extensions are given.
    """
    if extensions:
        program = "token-2022"
    data = encode_mint(
        decimals=decimals,
        mint_authority=None if mint_authority is None else mint_authority.pubkey(),
        freeze_authority=freeze_authority,
        program=program,
        extensions=_extensions(extensions or {}, freeze_authority),
    )
    mint = Keypair().pubkey()
    with chain.lock:
        lamports = chain.svm.minimum_balance_for_rent_exemption(len(data))
        chain.set_account(mint, Account(lamports=lamports, data=data, owner=TOKEN_PROGRAMS[program]))
    return mint


def _mint_account(chain: Chain, mint: Pubkey) -> Account:
    account = chain.svm.get_account(mint)
    if account is None:
        raise ValueError(f"mint {mint}: no such account")
    return account


def associated_account(chain: Chain, owner: Pubkey, mint: Pubkey) -> Pubkey:
    """The address of ``owner``'s associated token account of ``mint`` (under the mint's token program)."""
    with chain.lock:
        program = _mint_account(chain, mint).owner
    return get_associated_token_address(owner, mint, program)


def ensure_account(chain: Chain, owner: Pubkey, mint: Pubkey) -> Pubkey:
    """``owner``'s associated token account of ``mint``, created by the real associated-token program."""
    with chain.lock:
        program = _mint_account(chain, mint).owner
        ata = get_associated_token_address(owner, mint, program)
        if chain.svm.get_account(ata) is not None:
            return ata
        payer = Keypair()
        chain.svm.airdrop(payer.pubkey(), _FEE_PAYER_LAMPORTS)
        ix = create_idempotent_associated_token_account(payer.pubkey(), owner, mint, program)
        message = Message.new_with_blockhash([ix], payer.pubkey(), chain.svm.latest_blockhash())
        result = chain.svm.send_transaction(VersionedTransaction(message, [payer]))
        if type(result).__name__ == "FailedTransactionMetadata":
            why = result.err()  # type: ignore[union-attr]
            raise RuntimeError(f"creating the token account of {owner} for mint {mint} failed: {why}")
        notify = getattr(chain, "notify_changed", None)  # LocalSolana: subscribers see svm writes
        if notify is not None:
            notify([ata, payer.pubkey()])
    return ata


def mint_to(chain: Chain, mint: Pubkey, owner: Pubkey, amount: int) -> Pubkey:
    """Give ``owner`` ``amount`` more raw units of ``mint`` (supply grows too); the associated account."""
    if amount < 0:
        raise ValueError(f"amount: must be >= 0, got {amount}")
    ata = ensure_account(chain, owner, mint)
    with chain.lock:
        mint_account = _mint_account(chain, mint)
        token_account = chain.svm.get_account(ata)
        assert token_account is not None
        balance = decode_token_account(token_account.data).amount
        supply = decode_mint(mint_account.data, mint_account.owner).supply
        data = bytearray(token_account.data)
        data[64:72] = struct.pack("<Q", balance + amount)
        chain.set_account(ata, _with_data(token_account, bytes(data)))
        data = bytearray(mint_account.data)
        data[36:44] = struct.pack("<Q", supply + amount)
        chain.set_account(mint, _with_data(mint_account, bytes(data)))
    return ata


def _with_data(account: Account, data: bytes) -> Account:
    return Account(lamports=account.lamports, data=data, owner=account.owner, executable=account.executable)


def token_balance(chain: Chain, owner: Pubkey, mint: Pubkey) -> int:
    """``owner``'s balance of ``mint`` in raw units (its associated account; 0 when it has none)."""
    with chain.lock:
        program = _mint_account(chain, mint).owner
        account = chain.svm.get_account(get_associated_token_address(owner, mint, program))
        return 0 if account is None else decode_token_account(account.data).amount
