"""The Solana byte layouts against the REAL SPL Token and Token-2022 programs (solders' LiteSVM).

Mints the real programs initialise (extension-init instructions, then InitializeMint2) are decoded, and
:func:`encode_mint` must write the very same bytes; mints built by ``encode_mint`` and ``set_account`` are
then used by the real Token-2022 program (mint_to, transfer_checked, the transfer fee withheld, the traps).
"""

from __future__ import annotations

import struct

import pytest
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
    initialize_mint2,
    initialize_transfer_fee_config,
    mint_to_checked,
    transfer_checked,
)
from spl.token.models import (
    InitializeMint2Params,
    InitializeTransferFeeConfigParams,
    MintToCheckedParams,
    TransferCheckedParams,
)

from sniperbot.venues.solana.devtokens import (
    InProcessChain,
    associated_account,
    create_mint,
    ensure_account,
    mint_to,
    token_balance,
)
from sniperbot.venues.solana.layouts import (
    LOCAL_AMM_PROGRAM,
    POOL_STATE_SIZE,
    SOL_MINT,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    TOKEN_PROGRAMS,
    PoolState,
    TokenAccount,
    decode_mint,
    decode_token_account,
    encode_mint,
    encode_token_account,
)


@pytest.fixture
def svm() -> LiteSVM:
    """A fresh in-process SVM with the real token programs."""
    return LiteSVM()


@pytest.fixture
def payer(svm: LiteSVM) -> Keypair:
    """A funded fee payer."""
    kp = Keypair()
    svm.airdrop(kp.pubkey(), 100_000_000_000)
    return kp


def _send(svm: LiteSVM, payer: Keypair, ixs: list[Instruction], *signers: Keypair, ok: bool = True) -> object:
    tx = VersionedTransaction(
        Message.new_with_blockhash(ixs, payer.pubkey(), svm.latest_blockhash()), [payer, *signers]
    )
    result = svm.send_transaction(tx)
    failed = type(result).__name__ == "FailedTransactionMetadata"
    assert failed != ok, result.err() if failed else "the transaction succeeded"  # type: ignore[attr-defined]
    return result


def _program_mint(
    svm: LiteSVM, payer: Keypair, program: Pubkey, inits: list[bytes], size: int, **mint
) -> bytes:
    """The data of a mint created by the real ``program``: extension inits, then InitializeMint2."""
    mint_kp = Keypair()
    key = mint_kp.pubkey()
    ixs = [
        create_account(
            CreateAccountParams(
                from_pubkey=payer.pubkey(),
                to_pubkey=key,
                lamports=svm.minimum_balance_for_rent_exemption(size),
                space=size,
                owner=program,
            )
        ),
        *(Instruction(program, data, [AccountMeta(key, False, True)]) for data in inits),
        initialize_mint2(InitializeMint2Params(program_id=program, mint=key, **mint)),
    ]
    _send(svm, payer, ixs, mint_kp)
    account = svm.get_account(key)
    assert account is not None and account.owner == program
    return bytes(account.data)


def test_pool_state_round_trip_and_errors() -> None:
    """A PoolState encodes to 178 bytes and decodes back; bad data is refused with what is wrong."""
    keys = [Keypair().pubkey() for _ in range(4)]
    pool = PoolState(keys[0], SOL_MINT, keys[1], keys[2], keys[3], fee_bps=30, created_slot=123_456)
    data = pool.encode()
    assert len(data) == POOL_STATE_SIZE == 178
    assert data[:8] == b"sbpool01" and data[40:72] == bytes(SOL_MINT)
    assert struct.unpack_from("<HQ", data, 168) == (30, 123_456)
    assert PoolState.decode(data) == pool
    with pytest.raises(ValueError, match="177 bytes"):
        PoolState.decode(data[:-1])
    with pytest.raises(ValueError, match="discriminator"):
        PoolState.decode(b"xxxxxxxx" + data[8:])
    assert str(LOCAL_AMM_PROGRAM) == "7D5MzZciqoXJLtGjBw85QVp7RUJRtCGir5p5yGn2P2q9"


def test_spl_token_mint_written_by_the_program(svm: LiteSVM, payer: Keypair) -> None:
    """A legacy mint initialised by the real SPL Token program decodes, and encode_mint writes its bytes."""
    authority, freezer = Keypair().pubkey(), Keypair().pubkey()
    data = _program_mint(
        svm, payer, TOKEN_PROGRAM_ID, [], 82, decimals=9, mint_authority=authority, freeze_authority=freezer
    )
    mint = decode_mint(data, TOKEN_PROGRAM_ID)
    assert (mint.supply, mint.decimals, mint.program, mint.extensions) == (0, 9, "token", {})
    assert (mint.mint_authority, mint.freeze_authority) == (authority, freezer)
    assert encode_mint(decimals=9, mint_authority=authority, freeze_authority=freezer) == data
    with pytest.raises(ValueError, match="not a token program"):
        decode_mint(data, LOCAL_AMM_PROGRAM)
    with pytest.raises(ValueError, match="83 bytes"):
        decode_mint(data + b"\0", TOKEN_PROGRAM_ID)


def test_token_2022_extensions_written_by_the_program(svm: LiteSVM, payer: Keypair) -> None:
    """Extension TLVs written by the real Token-2022 program decode by name; encode_mint writes the same."""
    authority, freezer, delegate, hook, fee_auth, closer = (Keypair().pubkey() for _ in range(6))
    fee_init = initialize_transfer_fee_config(
        InitializeTransferFeeConfigParams(
            program_id=TOKEN_2022_PROGRAM_ID,
            mint=Pubkey.default(),  # only the data is used
            transfer_fee_config_authority=fee_auth,
            withdraw_withheld_authority=None,
            transfer_fee_basis_points=250,
            maximum_fee=5_000_000,
        )
    ).data
    inits = [
        fee_init,
        bytes([35]) + bytes(delegate),  # InitializePermanentDelegate
        bytes([36, 0]) + bytes(32) + bytes(hook),  # TransferHook Initialize (no authority)
        bytes([32]),  # InitializeNonTransferableMint
        bytes([28, 0, 2]),  # DefaultAccountState Initialize: frozen (needs a freeze authority)
        bytes([25, 1]) + bytes(closer),  # InitializeMintCloseAuthority
    ]
    size = 166 + (4 + 108) + (4 + 32) + (4 + 64) + 4 + (4 + 1) + (4 + 32)
    data = _program_mint(
        svm,
        payer,
        TOKEN_2022_PROGRAM_ID,
        inits,
        size,
        decimals=6,
        mint_authority=authority,
        freeze_authority=freezer,
    )
    mint = decode_mint(data, TOKEN_2022_PROGRAM_ID, epoch=0)
    assert (mint.program, mint.decimals, mint.mint_authority, mint.freeze_authority) == (
        "token-2022",
        6,
        authority,
        freezer,
    )
    ext = mint.extensions
    assert list(ext) == [
        "transfer_fee",
        "permanent_delegate",
        "transfer_hook",
        "non_transferable",
        "default_account_state",
        "mint_close_authority",
    ]
    fee = ext["transfer_fee"]
    assert (fee["bps"], fee["max"], fee["authority"], fee["withdraw_authority"]) == (
        250,
        5_000_000,
        fee_auth,
        None,
    )
    assert ext["permanent_delegate"] == {"delegate": delegate}
    assert ext["transfer_hook"] == {"authority": None, "program": hook}
    assert ext["non_transferable"] == {}
    assert ext["default_account_state"] == {"state": "frozen"}
    assert ext["mint_close_authority"] == {"authority": closer}
    # The short forms and the decoded forms both encode to the program's own bytes.
    short = {
        "transfer_fee": {"bps": 250, "max": 5_000_000, "authority": fee_auth},
        "permanent_delegate": delegate,
        "transfer_hook": {"program": hook},
        "non_transferable": {},
        "default_account_state": "frozen",
        "mint_close_authority": closer,
    }
    common = {
        "decimals": 6,
        "mint_authority": authority,
        "freeze_authority": freezer,
        "program": "token-2022",
    }
    assert encode_mint(**common, extensions=short) == data
    assert encode_mint(**common, extensions=ext) == data


def test_transfer_fee_in_force_by_epoch() -> None:
    """The older fee applies before the newer one's epoch, the newer from it; unknown epoch: the higher."""
    ext = {
        "transfer_fee": {
            "older": {"epoch": 0, "bps": 100, "max": 1_000},
            "newer": {"epoch": 50, "bps": 900, "max": 2_000},
        }
    }
    data = encode_mint(program="token-2022", extensions=ext)
    fee_at = {
        e: decode_mint(data, TOKEN_2022_PROGRAM_ID, epoch=e).extensions["transfer_fee"] for e in (49, 50)
    }
    assert (fee_at[49]["bps"], fee_at[49]["max"]) == (100, 1_000)
    assert (fee_at[50]["bps"], fee_at[50]["max"]) == (900, 2_000)
    assert decode_mint(data, TOKEN_2022_PROGRAM_ID).extensions["transfer_fee"]["bps"] == 900


def test_malformed_token_2022_mints_are_refused() -> None:
    """Padding, account type, truncated TLV and unknown types: named errors or named entries."""
    data = encode_mint(program="token-2022", extensions={"permanent_delegate": Keypair().pubkey()})
    with pytest.raises(ValueError, match="padding"):
        decode_mint(data[:100] + b"\1" + data[101:], TOKEN_2022_PROGRAM_ID)
    with pytest.raises(ValueError, match="account type 2"):
        decode_mint(data[:165] + b"\2" + data[166:], TOKEN_2022_PROGRAM_ID)
    with pytest.raises(ValueError, match="runs past the data"):
        decode_mint(data[:-1], TOKEN_2022_PROGRAM_ID)
    unknown = encode_mint(program="token-2022", extensions={"unknown_77": {"raw": "abcd"}})
    assert decode_mint(unknown, TOKEN_2022_PROGRAM_ID).extensions == {"unknown_77": {"raw": "abcd"}}
    with pytest.raises(ValueError, match="only a token-2022 mint"):
        encode_mint(extensions={"non_transferable": {}})


def test_token_account_round_trip() -> None:
    """A plain token account encodes to 165 bytes and decodes back."""
    acct = TokenAccount(Keypair().pubkey(), Keypair().pubkey(), 42, "frozen", delegated_amount=0)
    data = encode_token_account(acct)
    assert len(data) == 165
    assert decode_token_account(data) == acct
    with pytest.raises(ValueError, match="164 bytes"):
        decode_token_account(data[:-1])


def _set_mint(svm: LiteSVM, data: bytes, program: Pubkey = TOKEN_2022_PROGRAM_ID) -> Pubkey:
    key = Keypair().pubkey()
    lamports = svm.minimum_balance_for_rent_exemption(len(data))
    svm.set_account(key, Account(lamports=lamports, data=data, owner=program, executable=False))
    return key


def _holders(svm: LiteSVM, payer: Keypair, mint: Pubkey, authority: Keypair, amount: int) -> tuple:
    """Alice (funded, holding ``amount`` minted by the real program) and Bob, with their ATAs."""
    alice, bob = Keypair(), Keypair()
    svm.airdrop(alice.pubkey(), 1_000_000_000)
    atas = [get_associated_token_address(k.pubkey(), mint, TOKEN_2022_PROGRAM_ID) for k in (alice, bob)]
    ixs = [
        *(
            create_idempotent_associated_token_account(
                payer.pubkey(), k.pubkey(), mint, TOKEN_2022_PROGRAM_ID
            )
            for k in (alice, bob)
        ),
        mint_to_checked(
            MintToCheckedParams(
                program_id=TOKEN_2022_PROGRAM_ID,
                mint=mint,
                dest=atas[0],
                mint_authority=authority.pubkey(),
                amount=amount,
                decimals=6,
                signers=[],
            )
        ),
    ]
    _send(svm, payer, ixs, authority)
    return alice, bob, atas[0], atas[1]


def _transfer(
    svm: LiteSVM, mint: Pubkey, owner: Keypair, src: Pubkey, dst: Pubkey, amount: int, ok: bool
) -> None:
    ix = transfer_checked(
        TransferCheckedParams(
            program_id=TOKEN_2022_PROGRAM_ID,
            source=src,
            mint=mint,
            dest=dst,
            owner=owner.pubkey(),
            amount=amount,
            decimals=6,
            signers=[],
        )
    )
    _send(svm, owner, [ix], ok=ok)


def _account(svm: LiteSVM, key: Pubkey) -> TokenAccount:
    account = svm.get_account(key)
    assert account is not None
    return decode_token_account(account.data)


def test_encoded_transfer_fee_mint_runs_in_token_2022(svm: LiteSVM, payer: Keypair) -> None:
    """The real program mints to and transfers an encoded fee mint; the configured fee is withheld."""
    authority = Keypair()
    data = encode_mint(
        decimals=6,
        mint_authority=authority.pubkey(),
        program="token-2022",
        extensions={"transfer_fee": {"bps": 300, "max": 25_000}},
    )
    mint = _set_mint(svm, data)
    alice, _bob, ata_a, ata_b = _holders(svm, payer, mint, authority, 2_000_000)
    assert decode_mint(svm.get_account(mint).data, TOKEN_2022_PROGRAM_ID).supply == 2_000_000
    _transfer(svm, mint, alice, ata_a, ata_b, 500_000, ok=True)  # 3 % = 15_000 < max
    received = _account(svm, ata_b)
    assert received.amount == 485_000
    assert received.extensions["transfer_fee_amount"] == {"withheld": 15_000}
    _transfer(svm, mint, alice, ata_a, ata_b, 1_000_000, ok=True)  # 3 % = 30_000, capped at 25_000
    received = _account(svm, ata_b)
    assert received.amount == 485_000 + 975_000
    assert received.extensions["transfer_fee_amount"] == {"withheld": 40_000}
    assert _account(svm, ata_a).amount == 500_000


@pytest.mark.parametrize(
    "extensions",
    [
        pytest.param(
            {"transfer_hook": {"program": Pubkey.from_string("11111111111111111111111111111112")}},
            id="transfer_hook",
        ),
        pytest.param({"non_transferable": {}}, id="non_transferable"),
    ],
)
def test_encoded_trap_mints_stop_transfers(svm: LiteSVM, payer: Keypair, extensions: dict) -> None:
    """A transfer hook to an undeployed program, and a non-transferable mint: the real program refuses."""
    authority = Keypair()
    data = encode_mint(mint_authority=authority.pubkey(), program="token-2022", extensions=extensions)
    mint = _set_mint(svm, data)
    alice, _bob, ata_a, ata_b = _holders(svm, payer, mint, authority, 1_000_000)
    _transfer(svm, mint, alice, ata_a, ata_b, 1_000, ok=False)
    assert (_account(svm, ata_a).amount, _account(svm, ata_b).amount) == (1_000_000, 0)


def test_encoded_default_frozen_and_permanent_delegate(svm: LiteSVM, payer: Keypair) -> None:
    """Default-frozen accounts are created frozen; a permanent delegate moves anyone's tokens."""
    authority = Keypair()
    frozen = _set_mint(
        svm,
        encode_mint(
            mint_authority=authority.pubkey(),
            freeze_authority=authority.pubkey(),
            program="token-2022",
            extensions={"default_account_state": "frozen"},
        ),
    )
    owner = Keypair().pubkey()
    ix = create_idempotent_associated_token_account(payer.pubkey(), owner, frozen, TOKEN_2022_PROGRAM_ID)
    _send(svm, payer, [ix])
    assert _account(svm, get_associated_token_address(owner, frozen, TOKEN_2022_PROGRAM_ID)).state == "frozen"

    delegate = Keypair()
    svm.airdrop(delegate.pubkey(), 1_000_000_000)
    mint = _set_mint(
        svm,
        encode_mint(
            mint_authority=authority.pubkey(),
            program="token-2022",
            extensions={"permanent_delegate": delegate.pubkey()},
        ),
    )
    _alice, _bob, ata_a, ata_b = _holders(svm, payer, mint, authority, 1_000_000)
    _transfer(svm, mint, delegate, ata_a, ata_b, 600_000, ok=True)  # not Alice's signature: the delegate's
    assert (_account(svm, ata_a).amount, _account(svm, ata_b).amount) == (400_000, 600_000)


# -- devtokens: the same mints through the test helpers, against the real programs -----------------------


def _transfer_as(chain: InProcessChain, mint: Pubkey, owner: Keypair, to: Pubkey, amount: int) -> bool:
    """A real transfer_checked of ``amount`` from ``owner``'s to ``to``'s associated account; did it land."""
    svm = chain.svm
    svm.airdrop(owner.pubkey(), 1_000_000_000)
    account = svm.get_account(mint)
    program, decimals = account.owner, decode_mint(account.data, account.owner).decimals
    dst = ensure_account(chain, to, mint)
    ix = transfer_checked(
        TransferCheckedParams(
            program_id=program,
            source=associated_account(chain, owner.pubkey(), mint),
            mint=mint,
            dest=dst,
            owner=owner.pubkey(),
            amount=amount,
            decimals=decimals,
            signers=[],
        )
    )
    tx = VersionedTransaction(
        Message.new_with_blockhash([ix], owner.pubkey(), svm.latest_blockhash()), [owner]
    )
    return type(svm.send_transaction(tx)).__name__ != "FailedTransactionMetadata"


@pytest.mark.parametrize("program", ["token", "token-2022"])
def test_devtokens_balances_are_real_to_the_programs(program: str) -> None:
    """mint_to allocates a balance the real program then transfers; token_balance and the supply follow."""
    chain = InProcessChain()
    mint = create_mint(chain, decimals=9, mint_authority=None, program=program)
    alice, bob = Keypair(), Keypair().pubkey()
    assert token_balance(chain, alice.pubkey(), mint) == 0
    ata = mint_to(chain, mint, alice.pubkey(), 5_000)
    mint_to(chain, mint, alice.pubkey(), 2_000)
    assert ata == associated_account(chain, alice.pubkey(), mint)
    assert chain.svm.get_account(ata).owner == TOKEN_PROGRAMS[program]
    assert token_balance(chain, alice.pubkey(), mint) == 7_000
    assert _transfer_as(chain, mint, alice, bob, 3_000)
    assert (token_balance(chain, alice.pubkey(), mint), token_balance(chain, bob, mint)) == (4_000, 3_000)
    minted = decode_mint(chain.svm.get_account(mint).data, TOKEN_PROGRAMS[program])
    assert (minted.supply, minted.decimals, minted.mint_authority, minted.program) == (
        7_000,
        9,
        None,
        program,
    )


@pytest.mark.parametrize(
    ("extensions", "moves", "received"),
    [
        ({"transfer_fee": {"bps": 1_000, "max": 10**9}}, True, 900),
        ({"transfer_hook": {}}, False, 0),
        ({"non_transferable": True}, False, 0),
        ({"default_account_state": "frozen"}, False, 0),
        ({"mint_close_authority": Pubkey.from_string("11111111111111111111111111111112")}, True, 1_000),
    ],
    ids=["transfer_fee", "transfer_hook", "non_transferable", "default_frozen", "mint_close_authority"],
)
def test_devtokens_extension_mints(extensions: dict, moves: bool, received: int) -> None:
    """Token-2022 mints from create_mint behave as their extensions say under the real program."""
    chain = InProcessChain()
    freezer = Keypair().pubkey()
    mint = create_mint(chain, mint_authority=Keypair(), freeze_authority=freezer, extensions=extensions)
    decoded = decode_mint(chain.svm.get_account(mint).data, TOKEN_2022_PROGRAM_ID)
    assert decoded.program == "token-2022" and list(decoded.extensions) == list(extensions)
    alice, bob = Keypair(), Keypair().pubkey()
    mint_to(chain, mint, alice.pubkey(), 10_000)
    assert _transfer_as(chain, mint, alice, bob, 1_000) is moves
    assert token_balance(chain, bob, mint) == received
    if "default_account_state" in extensions:
        assert decode_token_account(
            chain.svm.get_account(associated_account(chain, bob, mint)).data
        ).state == ("frozen")
        with pytest.raises(ValueError, match="needs a freeze_authority"):
            create_mint(chain, extensions=extensions)


def test_devtokens_permanent_delegate_takes_anyones_tokens() -> None:
    """A permanent delegate moves a holder's tokens without the holder's signature."""
    chain = InProcessChain()
    delegate = Keypair()
    mint = create_mint(chain, extensions={"permanent_delegate": delegate.pubkey()})
    victim = Keypair().pubkey()
    victim_ata = mint_to(chain, mint, victim, 10_000)
    chain.svm.airdrop(delegate.pubkey(), 1_000_000_000)
    ix = transfer_checked(
        TransferCheckedParams(
            program_id=TOKEN_2022_PROGRAM_ID,
            source=victim_ata,
            mint=mint,
            dest=ensure_account(chain, delegate.pubkey(), mint),
            owner=delegate.pubkey(),
            amount=10_000,
            decimals=6,
            signers=[],
        )
    )
    _send(chain.svm, delegate, [ix])
    assert (token_balance(chain, victim, mint), token_balance(chain, delegate.pubkey(), mint)) == (0, 10_000)
