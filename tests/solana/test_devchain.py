"""LocalSolana, driven by the real solana-py clients: what the Solana venue's code relies on from a chain."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized, Processed
from solana.rpc.core import RPCException, TransactionExpiredBlockheightExceededError
from solana.rpc.models import MemcmpOpts, TokenAccountOpts, TxOpts
from solana.rpc.websocket_api import SolanaWsClient
from solders.account import Account
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.rpc.config import RpcTransactionLogsFilterMentions
from solders.rpc.responses import (
    AccountNotification,
    LogsNotification,
    ProgramNotification,
    SignatureNotification,
    SlotNotification,
)
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionErrorFieldless
from spl.token.constants import TOKEN_PROGRAM_ID
from spl.token.instructions import (
    create_associated_token_account,
    get_associated_token_address,
    initialize_mint,
    mint_to_checked,
    transfer_checked,
)
from spl.token.models import InitializeMintParams, MintToCheckedParams, TransferCheckedParams

from sniperbot.venues.solana.devchain import LocalSolana
from sniperbot.venues.solana.jito import MIN_TIP_LAMPORTS, TIP_ACCOUNTS

T = TypeVar("T")
SOL = 1_000_000_000
NO_CONFIRM = TxOpts(skip_confirmation=True, preflight_commitment=Processed)


def sign(
    payer: Keypair, instructions: list[Instruction], blockhash: Hash, *signers: Keypair
) -> VersionedTransaction:
    """A signed v0 transaction (the shape Jupiter returns)."""
    msg = MessageV0.try_compile(payer.pubkey(), instructions, [], blockhash)
    return VersionedTransaction(msg, [payer, *signers])


def pay(src: Keypair, dst: Pubkey, lamports: int) -> Instruction:
    return transfer(TransferParams(from_pubkey=src.pubkey(), to_pubkey=dst, lamports=lamports))


async def until(check: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 10.0) -> T:
    """Poll an async check until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def rpc(chain: LocalSolana, method: str, params: list[Any]) -> Any:
    """A raw JSON-RPC call (methods AsyncClient does not wrap); the result, or the error object."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with aiohttp.ClientSession() as http, http.post(chain.rpc_url, json=body) as resp:
        doc = await resp.json()
    return doc["result"] if "result" in doc else doc["error"]


async def blockhash_valid(chain: LocalSolana, blockhash: Hash) -> bool:
    return bool(
        (await rpc(chain, "isBlockhashValid", [str(blockhash), {"commitment": "processed"}]))["value"]
    )


async def status(client: AsyncClient, sig: Any) -> Any:
    return (await client.get_signature_statuses([sig])).value[0]


async def engine(chain: LocalSolana, path: str, method: str, params: list[Any]) -> dict[str, Any]:
    """A JSON-RPC call to the block engine (Jito's HTTP API: no client library)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with aiohttp.ClientSession() as http, http.post(chain.block_engine_url + path, json=body) as resp:
        assert resp.status == 200
        return dict(await resp.json())


def b64(tx: VersionedTransaction) -> str:
    return base64.b64encode(bytes(tx)).decode()


# -------------------------------------------------------------------------------------------- transactions


def test_sol_transfer_lands_in_the_next_slot_then_confirms_and_finalizes(
    solchain: LocalSolana, payer: Keypair
):
    dest = Keypair().pubkey()

    async def scenario() -> None:
        async with AsyncClient(solchain.rpc_url, commitment=Confirmed) as client:
            bh = (await client.get_latest_blockhash(Processed)).value
            tx = sign(payer, [pay(payer, dest, 2 * SOL)], bh.blockhash)
            solchain.pause()  # the test makes the slots: sent, not landed exists until it does
            sig = (await client.send_transaction(tx, NO_CONFIRM)).value
            assert await status(client, sig) is None
            assert (await client.get_balance(dest, Processed)).value == 0
            sent_at = solchain.slot()
            seen = []
            for _ in range(solchain.finality_slots + 1):
                solchain.produce_slots(1)
                st = await status(client, sig)
                seen.append((str(st.confirmation_status).rsplit(".", 1)[-1].lower(), st.confirmations))
            assert seen == [
                ("processed", 0),
                ("confirmed", 1),
                ("confirmed", 2),
                ("confirmed", 3),
                ("finalized", None),
            ]
            assert st.slot == sent_at + 1 and st.err is None
            assert (await client.get_balance(dest, Processed)).value == 2 * SOL
            got = (await client.get_transaction(sig, max_supported_transaction_version=0)).value
            assert got is not None and got.slot == st.slot
            meta = got.transaction.meta
            assert meta.err is None and meta.fee == 5000
            assert meta.pre_balances[:2] == [100 * SOL, 0]
            assert meta.post_balances[:2] == [100 * SOL - 2 * SOL - 5000, 2 * SOL]
            # the real client's confirmation loop, with the chain running again
            solchain.resume()
            await client.confirm_transaction(
                sig, Confirmed, sleep_seconds=0.02, last_valid_block_height=bh.last_valid_block_height
            )

    asyncio.run(scenario())


def test_a_transaction_failing_in_execution_lands_with_its_error_and_pays_its_fee(
    solchain: LocalSolana, payer: Keypair
):
    dest = Keypair().pubkey()

    async def scenario() -> None:
        async with AsyncClient(solchain.rpc_url) as client:
            bh = (await client.get_latest_blockhash(Processed)).value.blockhash
            overdraw = sign(payer, [pay(payer, dest, 1000 * SOL)], bh)
            with pytest.raises(RPCException) as refused:  # preflight sees it fail
                await client.send_transaction(overdraw, NO_CONFIRM)
            assert refused.value.args[0].data.err.index == 0  # InstructionError at instruction 0
            assert any("insufficient lamports" in line for line in refused.value.args[0].data.logs)
            sig = (
                await client.send_transaction(overdraw, TxOpts(skip_confirmation=True, skip_preflight=True))
            ).value
            landed = await asyncio.to_thread(solchain.wait_for_signature, sig, "finalized")
            assert landed.commitment == "finalized" and landed.err == {"InstructionError": [0, {"Custom": 1}]}
            st = await status(client, sig)
            assert st.err is not None and st.slot == landed.slot
            assert (await client.get_balance(payer.pubkey(), Processed)).value == 100 * SOL - 5000
            assert solchain.account(dest) is None

    asyncio.run(scenario())


def test_get_fee_for_message_is_the_fee_charged_priority_fee_included(solchain: LocalSolana, payer: Keypair):
    dest = Keypair().pubkey()

    async def scenario() -> None:
        async with AsyncClient(solchain.rpc_url) as client:
            bh = (await client.get_latest_blockhash(Processed)).value.blockhash
            explicit = sign(
                payer,
                [set_compute_unit_limit(60_000), set_compute_unit_price(250_000), pay(payer, dest, SOL)],
                bh,
            )
            default_limit = sign(payer, [set_compute_unit_price(123_456), pay(payer, dest, SOL)], bh)
            quoted = [
                (await client.get_fee_for_message(tx.message)).value for tx in (explicit, default_limit)
            ]
            assert quoted[0] == 5000 + 15_000  # 5000 a signature + 60k CU x 0.25 lamport
            for tx in (explicit, default_limit):
                sig = (await client.send_transaction(tx, NO_CONFIRM)).value
                await until(lambda: status(client, sig), "the transfer to land")  # noqa: B023
            paid = 100 * SOL - 2 * SOL - (await client.get_balance(payer.pubkey(), Processed)).value
            assert paid == sum(quoted)
            fees = (await client.get_recent_prioritization_fees([dest])).value
            assert max(f.prioritization_fee for f in fees) == 250_000

    asyncio.run(scenario())


def test_an_expired_blockhash_is_refused_by_preflight(solchain: LocalSolana, payer: Keypair):
    async def scenario() -> None:
        async with AsyncClient(solchain.rpc_url) as client:
            bh = (await client.get_latest_blockhash(Processed)).value
            assert await blockhash_valid(solchain, bh.blockhash) is True
            solchain.pause()
            solchain.produce_slots(bh.last_valid_block_height - solchain.slot() + 1)
            assert (await client.get_block_height(Processed)).value == bh.last_valid_block_height + 1
            assert await blockhash_valid(solchain, bh.blockhash) is False
            tx = sign(payer, [pay(payer, Keypair().pubkey(), SOL)], bh.blockhash)
            with pytest.raises(RPCException) as refused:
                await client.send_transaction(tx, NO_CONFIRM)
            assert refused.value.args[0].data.err == TransactionErrorFieldless.BlockhashNotFound
            assert "Blockhash not found" in refused.value.args[0].message
            # without preflight it is accepted, then never lands
            sig = (
                await client.send_transaction(tx, TxOpts(skip_confirmation=True, skip_preflight=True))
            ).value
            solchain.produce_slots(2)
            assert await status(client, sig) is None
            assert (await client.get_balance(payer.pubkey(), Processed)).value == 100 * SOL

    asyncio.run(scenario())


def test_a_resent_transaction_is_already_processed_and_never_lands_twice(
    solchain: LocalSolana, payer: Keypair
):
    dest = Keypair().pubkey()

    async def scenario() -> None:
        async with AsyncClient(solchain.rpc_url) as client:
            bh = (await client.get_latest_blockhash(Processed)).value
            tx = sign(payer, [pay(payer, dest, SOL)], bh.blockhash)
            sig = (await client.send_transaction(tx, NO_CONFIRM)).value
            await until(lambda: status(client, sig), "the transfer to land")
            with pytest.raises(RPCException) as again:
                await client.send_transaction(tx, NO_CONFIRM)
            err = again.value.args[0]
            assert err.data.err == TransactionErrorFieldless.AlreadyProcessed
            assert "already been processed" in err.message
            # skipPreflight: the RPC answers the signature, the duplicate is dropped
            assert (
                await client.send_transaction(tx, TxOpts(skip_confirmation=True, skip_preflight=True))
            ).value == sig
            solchain.wait_for_slot(solchain.slot() + 3)
            assert (await client.get_balance(dest, Processed)).value == SOL
            history = (await client.get_signatures_for_address(dest, commitment=Confirmed)).value
            assert [h.signature for h in history] == [sig]
            assert solchain.signatures_for(dest) == [sig]  # landed exactly once

    asyncio.run(scenario())


def test_a_dropped_transaction_never_lands_and_its_blockhash_expires(payer: Keypair, solchain: LocalSolana):
    dest = Keypair().pubkey()

    async def scenario() -> None:
        async with AsyncClient(solchain.rpc_url) as client:
            bh = (await client.get_latest_blockhash(Processed)).value
            tx = sign(payer, [pay(payer, dest, SOL)], bh.blockhash)
            solchain.drop_next(1)
            sig = (await client.send_transaction(tx, NO_CONFIRM)).value
            assert sig == tx.signatures[0]
            solchain.pause()
            solchain.produce_slots(bh.last_valid_block_height - solchain.slot() + 1)
            # the real client gives up once the block height passes lastValidBlockHeight
            with pytest.raises(TransactionExpiredBlockheightExceededError):
                await client.confirm_transaction(
                    sig, Processed, sleep_seconds=0.01, last_valid_block_height=bh.last_valid_block_height
                )
            assert await blockhash_valid(solchain, bh.blockhash) is False
            assert (await client.get_signature_statuses([sig], search_transaction_history=True)).value[
                0
            ] is None
            assert (await client.get_balance(dest, Processed)).value == 0

    asyncio.run(scenario())


def test_an_spl_transfer_checked_moves_tokens_with_pre_and_post_token_balances(
    solchain: LocalSolana, payer: Keypair
):
    mint, bob = Keypair(), Keypair().pubkey()
    alice = payer.pubkey()
    rent = solchain.svm.minimum_balance_for_rent_exemption(82)
    bh = solchain.latest_blockhash()
    ata_a = get_associated_token_address(alice, mint.pubkey())
    ata_b = get_associated_token_address(bob, mint.pubkey())
    solchain.send_raw(
        sign(
            payer,
            [
                create_account(
                    CreateAccountParams(
                        from_pubkey=alice,
                        to_pubkey=mint.pubkey(),
                        lamports=rent,
                        space=82,
                        owner=TOKEN_PROGRAM_ID,
                    )
                ),
                initialize_mint(
                    InitializeMintParams(
                        decimals=6, program_id=TOKEN_PROGRAM_ID, mint=mint.pubkey(), mint_authority=alice
                    )
                ),
                create_associated_token_account(alice, alice, mint.pubkey()),
                create_associated_token_account(alice, bob, mint.pubkey()),
                mint_to_checked(
                    MintToCheckedParams(
                        program_id=TOKEN_PROGRAM_ID,
                        mint=mint.pubkey(),
                        dest=ata_a,
                        mint_authority=alice,
                        amount=1_000_000_000,
                        decimals=6,
                    )
                ),
            ],
            bh,
            mint,
        )
    )

    async def scenario() -> None:
        async with AsyncClient(solchain.rpc_url) as client:
            bh = (await client.get_latest_blockhash(Processed)).value.blockhash
            tx = sign(
                payer,
                [
                    transfer_checked(
                        TransferCheckedParams(
                            program_id=TOKEN_PROGRAM_ID,
                            source=ata_a,
                            mint=mint.pubkey(),
                            dest=ata_b,
                            owner=alice,
                            amount=250_000_000,
                            decimals=6,
                        )
                    )
                ],
                bh,
            )
            sig = (await client.send_transaction(tx, NO_CONFIRM)).value

            async def confirmed() -> Any:
                return (await client.get_transaction(sig, "json", Confirmed, 0)).value

            got = await until(confirmed, "the transfer to confirm")
            meta = got.transaction.meta
            assert meta.err is None
            keys = got.transaction.transaction.message.account_keys
            pre = {keys[b.account_index]: b.ui_token_amount.amount for b in meta.pre_token_balances}
            post = {keys[b.account_index]: b.ui_token_amount.amount for b in meta.post_token_balances}
            assert pre == {ata_a: "1000000000", ata_b: "0"}
            assert post == {ata_a: "750000000", ata_b: "250000000"}
            owners = {keys[b.account_index]: b.owner for b in meta.post_token_balances}
            assert owners == {ata_a: alice, ata_b: bob}
            assert all(
                b.mint == mint.pubkey() and b.ui_token_amount.decimals == 6 for b in meta.post_token_balances
            )
            assert (await client.get_token_account_balance(ata_b, Processed)).value.ui_amount_string == "250"
            assert (await client.get_token_supply(mint.pubkey(), Processed)).value.amount == "1000000000"
            largest = (await client.get_token_largest_accounts(mint.pubkey(), Processed)).value
            assert [(a.address, a.amount.amount) for a in largest] == [
                (ata_a, "750000000"),
                (ata_b, "250000000"),
            ]
            mine = (await client.get_token_accounts_by_owner(bob, TokenAccountOpts(mint=mint.pubkey()))).value
            assert [a.pubkey for a in mine] == [ata_b]
            accounts = (
                await client.get_program_accounts(
                    TOKEN_PROGRAM_ID, encoding="base64", filters=[165, MemcmpOpts(offset=32, bytes=str(bob))]
                )
            ).value
            assert [a.pubkey for a in accounts] == [ata_b]

    asyncio.run(scenario())


# -------------------------------------------------------------------------------------------- Jito


def test_a_bundle_lands_atomically_in_one_slot(solchain: LocalSolana, payer: Keypair):
    alice, bob = Keypair(), Keypair().pubkey()
    tip = TIP_ACCOUNTS[3]

    async def scenario() -> None:
        async with AsyncClient(solchain.rpc_url) as client:
            bh = (await client.get_latest_blockhash(Processed)).value.blockhash
            tip_before = (await client.get_balance(tip, Processed)).value
            tx1 = sign(payer, [pay(payer, alice.pubkey(), 3 * SOL)], bh)
            tx2 = sign(
                alice, [pay(alice, bob, SOL), pay(alice, tip, MIN_TIP_LAMPORTS)], bh
            )  # needs tx1 first
            tips = await engine(solchain, "api/v1/getTipAccounts", "getTipAccounts", [])
            assert [Pubkey.from_string(t) for t in tips["result"]] == list(TIP_ACCOUNTS)
            # configured as "http://host:port" + "/api/v1/bundles" or "http://host:port/" + ...: both work
            sent = await engine(
                solchain, "/api/v1/bundles", "sendBundle", [[b64(tx1), b64(tx2)], {"encoding": "base64"}]
            )
            expected_id = hashlib.sha256(f"{tx1.signatures[0]},{tx2.signatures[0]}".encode()).hexdigest()
            assert sent["result"] == expected_id

            async def landed() -> dict[str, Any] | None:
                r = await engine(
                    solchain, "api/v1/getInflightBundleStatuses", "getInflightBundleStatuses", [[expected_id]]
                )
                v = r["result"]["value"][0]
                return v if v["status"] == "Landed" else None

            inflight = await until(landed, "the bundle to land")
            statuses = (await client.get_signature_statuses([tx1.signatures[0], tx2.signatures[0]])).value
            assert statuses[0].slot == statuses[1].slot == inflight["landed_slot"]
            assert (await client.get_balance(bob, Processed)).value == SOL
            assert (await client.get_balance(tip, Processed)).value == tip_before + MIN_TIP_LAMPORTS
            final = await engine(solchain, "api/v1/bundles", "getBundleStatuses", [[expected_id]])
            assert final["result"]["value"][0]["transactions"] == [
                str(tx1.signatures[0]),
                str(tx2.signatures[0]),
            ]
            assert final["result"]["value"][0]["slot"] == inflight["landed_slot"]

    asyncio.run(scenario())


def test_a_failing_bundle_changes_nothing(solchain: LocalSolana, payer: Keypair):
    bob = Keypair().pubkey()
    tip = TIP_ACCOUNTS[0]

    async def scenario() -> None:
        async with AsyncClient(solchain.rpc_url) as client:
            bh = (await client.get_latest_blockhash(Processed)).value.blockhash
            tip_before = (await client.get_balance(tip, Processed)).value
            ok = sign(payer, [pay(payer, bob, SOL), pay(payer, tip, 10_000)], bh)
            poor = Keypair()
            solchain.airdrop(poor.pubkey(), SOL)
            overdraw = sign(poor, [pay(poor, bob, 5 * SOL)], bh)  # lands alone (with an error, fee charged)
            sent = await engine(
                solchain, "api/v1/bundles", "sendBundle", [[b64(ok), b64(overdraw)], {"encoding": "base64"}]
            )
            bid = sent["result"]

            async def failed() -> bool:
                r = await engine(solchain, "api/v1/bundles", "getInflightBundleStatuses", [[bid]])
                return r["result"]["value"][0]["status"] == "Failed"

            await until(failed, "the bundle to fail")
            solchain.wait_for_slot(solchain.slot() + 1)
            assert (await client.get_balance(bob, Processed)).value == 0
            assert (await client.get_balance(payer.pubkey(), Processed)).value == 100 * SOL  # not even a fee
            assert (await client.get_balance(poor.pubkey(), Processed)).value == SOL
            assert (await client.get_balance(tip, Processed)).value == tip_before
            assert (
                await client.get_signature_statuses([ok.signatures[0], overdraw.signatures[0]])
            ).value == [None, None]
            assert (await engine(solchain, "api/v1/bundles", "getBundleStatuses", [[bid]]))["result"][
                "value"
            ] == [None]
            # the bundle's good transaction can still be sent on its own
            sig = (await client.send_transaction(ok, NO_CONFIRM)).value
            await until(lambda: status(client, sig), "the good transaction to land alone")

    asyncio.run(scenario())


def test_a_bundle_without_a_tip_is_refused(solchain: LocalSolana, payer: Keypair):
    bob = Keypair().pubkey()

    async def scenario() -> None:
        bh = solchain.latest_blockhash()
        no_tip = sign(payer, [pay(payer, bob, SOL)], bh)
        small = sign(payer, [pay(payer, bob, SOL), pay(payer, TIP_ACCOUNTS[1], MIN_TIP_LAMPORTS - 1)], bh)
        for tx in (no_tip, small):
            r = await engine(solchain, "api/v1/bundles", "sendBundle", [[b64(tx)], {"encoding": "base64"}])
            assert r["error"]["code"] == -32602 and "tip" in r["error"]["message"]
        solchain.wait_for_slot(solchain.slot() + 2)
        assert solchain.account(bob) is None

    asyncio.run(scenario())


def test_simulate_bundle_runs_dependent_transactions_in_order_on_a_copy(
    solchain: LocalSolana, payer: Keypair
):
    fresh, bob = Keypair(), Keypair().pubkey()

    async def scenario() -> None:
        async with AsyncClient(solchain.rpc_url) as client:
            bh = (await client.get_latest_blockhash(Processed)).value.blockhash
            fund = sign(payer, [pay(payer, fresh.pubkey(), 2 * SOL)], bh)
            spend = sign(fresh, [pay(fresh, bob, SOL)], bh)  # its fee payer only exists after `fund`
            alone = (await client.simulate_transaction(spend)).value
            assert alone.err == TransactionErrorFieldless.AccountNotFound
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "simulateBundle",
                "params": [
                    {"encodedTransactions": [b64(fund), b64(spend)]},
                    {
                        "skipSigVerify": False,
                        "replaceRecentBlockhash": False,
                        "preExecutionAccountsConfigs": [None, None],
                        "postExecutionAccountsConfigs": [
                            None,
                            {"addresses": [str(bob)], "encoding": "base64"},
                        ],
                    },
                ],
            }
            value = (await rpc(solchain, body["method"], body["params"]))["value"]
            assert value["summary"] == "succeeded"
            assert [r["err"] for r in value["transactionResults"]] == [None, None]
            assert value["transactionResults"][1]["postExecutionAccounts"][0]["lamports"] == SOL
            # a copy: nothing happened
            assert (await client.get_balance(fresh.pubkey(), Processed)).value == 0
            assert (await client.get_balance(payer.pubkey(), Processed)).value == 100 * SOL
            # and in the wrong order the first one fails
            body["params"][0]["encodedTransactions"] = [b64(spend), b64(fund)]
            body["params"][1] = {}
            value = (await rpc(solchain, body["method"], body["params"]))["value"]
            assert value["summary"]["failed"]["tx_signature"] == str(spend.signatures[0])
            assert value["transactionResults"][0]["err"] == "AccountNotFound"

    asyncio.run(scenario())


# -------------------------------------------------------------------------------------------- WebSocket


def test_program_and_slot_subscriptions_notify_through_the_real_ws_client(
    solchain: LocalSolana, payer: Keypair
):
    program = Pubkey.from_string("7D5MzZciqoXJLtGjBw85QVp7RUJRtCGir5p5yGn2P2q9")
    written, created = Keypair().pubkey(), Keypair()

    async def scenario() -> None:
        async with SolanaWsClient(solchain.ws_url) as ws, AsyncClient(solchain.rpc_url) as client:
            slots = await ws.slot_subscribe()
            first = await asyncio.wait_for(ws.recv(), 5)
            assert isinstance(first, SlotNotification) and first.subscription == slots.subscription_id
            second = await asyncio.wait_for(ws.recv(), 5)
            assert second.result.slot == first.result.slot + 1 and second.result.parent == first.result.slot
            await ws.unsubscribe(slots)
            sub = await ws.program_subscribe(
                program_id=program,
                commitment=Confirmed,
                encoding="base64",
                filters=[40, MemcmpOpts(offset=8, bytes=str(Pubkey.default()))],
            )
            data = b"sbpool01" + bytes(32)
            # 1. set_account through the devchain API
            solchain.set_account(written, Account(10**7, data, program))
            # 2. accounts the filters leave out: wrong size, wrong bytes at offset 8
            solchain.set_account(Keypair().pubkey(), Account(10**7, data + b"x", program))
            solchain.set_account(Keypair().pubkey(), Account(10**7, b"sbpool01" + bytes(program), program))
            # 3. a landed transaction creating an account owned by the program
            bh = (await client.get_latest_blockhash(Processed)).value.blockhash
            create = create_account(
                CreateAccountParams(
                    from_pubkey=payer.pubkey(),
                    to_pubkey=created.pubkey(),
                    lamports=10**7,
                    space=40,
                    owner=program,
                )
            )
            await client.send_transaction(sign(payer, [create], bh, created), NO_CONFIRM)
            got = []
            while len(got) < 2:
                note = await asyncio.wait_for(ws.recv(), 5)
                if isinstance(note, ProgramNotification):
                    got.append(note)
            assert [n.subscription for n in got] == [sub.subscription_id] * 2
            assert got[0].result.value.pubkey == written and got[0].result.value.account.data == data
            assert got[1].result.value.pubkey == created.pubkey()
            assert (
                got[1].result.value.account.data == bytes(40) and got[1].result.value.account.owner == program
            )

    asyncio.run(scenario())


def test_account_logs_and_signature_subscriptions_notify_at_their_commitment(
    solchain: LocalSolana, payer: Keypair
):
    dest = Keypair().pubkey()

    async def scenario() -> None:
        async with SolanaWsClient(solchain.ws_url) as ws, AsyncClient(solchain.rpc_url) as client:
            bh = (await client.get_latest_blockhash(Processed)).value.blockhash
            tx = sign(payer, [pay(payer, dest, SOL)], bh)
            solchain.pause()
            account = await ws.account_subscribe(pubkey=dest, commitment=Processed, encoding="base64")
            logs = await ws.logs_subscribe(
                filter_=RpcTransactionLogsFilterMentions(dest), commitment=Confirmed
            )
            signature = await ws.signature_subscribe(signature=tx.signatures[0], commitment=Finalized)
            await client.send_transaction(tx, NO_CONFIRM)
            landed = solchain.produce_slots(1)
            solchain.produce_slots(solchain.finality_slots)
            notes = [await asyncio.wait_for(ws.recv(), 5) for _ in range(3)]
            assert [type(n) for n in notes] == [AccountNotification, LogsNotification, SignatureNotification]
            assert [n.subscription for n in notes] == [
                account.subscription_id,
                logs.subscription_id,
                signature.subscription_id,
            ]
            # each when its slot reached the subscription's commitment
            assert [n.result.context.slot for n in notes] == [
                landed,
                landed + 1,
                landed + solchain.finality_slots,
            ]
            assert notes[0].result.value.lamports == SOL
            assert notes[1].result.value.signature == tx.signatures[0] and notes[1].result.value.err is None
            assert "Program 11111111111111111111111111111111 success" in notes[1].result.value.logs
            assert notes[2].result.value.err is None

    asyncio.run(scenario())


def test_simulate_transaction_with_a_replaced_blockhash_returns_the_accounts_after(
    solchain: LocalSolana, payer: Keypair
):
    dest = Keypair().pubkey()

    async def scenario() -> None:
        async with AsyncClient(solchain.rpc_url) as client:
            stale = (await client.get_latest_blockhash(Processed)).value
            solchain.pause()
            solchain.produce_slots(stale.last_valid_block_height - solchain.slot() + 1)
            tx = sign(payer, [pay(payer, dest, SOL)], stale.blockhash)
            assert (
                await client.simulate_transaction(tx)
            ).value.err == TransactionErrorFieldless.BlockhashNotFound
            sim = (
                await client.simulate_transaction(
                    tx, replace_recent_blockhash=True, accounts_addresses=[dest]
                )
            ).value
            assert sim.err is None and sim.units_consumed > 0
            assert sim.replacement_blockhash.blockhash == solchain.latest_blockhash()
            assert sim.accounts[0].lamports == SOL
            assert solchain.account(dest) is None  # a simulation changes nothing
            # the chain's metadata the venue's preflight reads
            assert await rpc(solchain, "getHealth", []) == "ok"
            genesis = (await client.get_genesis_hash()).value
            assert (
                genesis == (await client.get_genesis_hash()).value and genesis != solchain.latest_blockhash()
            )

    asyncio.run(scenario())


def test_a_dropped_bundle_is_pending_until_its_blockhash_expires_then_failed(
    solchain: LocalSolana, payer: Keypair
):
    bob = Keypair().pubkey()

    async def scenario() -> None:
        async with AsyncClient(solchain.rpc_url) as client:
            bh = (await client.get_latest_blockhash(Processed)).value
            tx = sign(payer, [pay(payer, bob, SOL), pay(payer, TIP_ACCOUNTS[5], 5000)], bh.blockhash)
            solchain.pause()
            solchain.drop_next(1)
            bid = (
                await engine(solchain, "api/v1/bundles", "sendBundle", [[b64(tx)], {"encoding": "base64"}])
            )["result"]

            async def inflight() -> str:
                r = await engine(solchain, "api/v1/bundles", "getInflightBundleStatuses", [[bid]])
                return str(r["result"]["value"][0]["status"])

            solchain.produce_slots(bh.last_valid_block_height - solchain.slot())
            assert await inflight() == "Pending"  # could still land at lastValidBlockHeight
            solchain.produce_slots(1)
            assert await inflight() == "Failed"
            assert (await engine(solchain, "api/v1/bundles", "getBundleStatuses", [[bid]]))["result"][
                "value"
            ] == [None]
            assert solchain.account(bob) is None
            unknown = "00" * 32
            r = await engine(solchain, "api/v1/bundles", "getInflightBundleStatuses", [[unknown]])
            assert r["result"]["value"][0]["status"] == "Invalid"
            # Jito's sendTransaction path: a single transaction lands like one sent to the RPC
            solchain.resume()
            fresh = sign(
                payer, [pay(payer, bob, SOL)], (await client.get_latest_blockhash(Processed)).value.blockhash
            )
            sent = await engine(
                solchain, "api/v1/transactions", "sendTransaction", [b64(fresh), {"encoding": "base64"}]
            )
            st = await until(lambda: status(client, fresh.signatures[0]), "the transaction to land")
            assert sent["result"] == str(fresh.signatures[0]) and st.err is None
            assert (await client.get_balance(bob, Processed)).value == SOL

    asyncio.run(scenario())


def test_a_lost_bundle_sent_again_lands_once(solchain: LocalSolana, payer: Keypair):
    bob = Keypair().pubkey()

    async def scenario() -> None:
        bh = solchain.latest_blockhash()
        tx = sign(payer, [pay(payer, bob, SOL), pay(payer, TIP_ACCOUNTS[2], 5000)], bh)
        solchain.pause()
        solchain.drop_next(1)

        async def send() -> str:
            r = await engine(solchain, "api/v1/bundles", "sendBundle", [[b64(tx)], {"encoding": "base64"}])
            return str(r["result"])

        async def inflight(bid: str) -> dict[str, Any]:
            r = await engine(solchain, "api/v1/bundles", "getInflightBundleStatuses", [[bid]])
            return dict(r["result"]["value"][0])

        bid = await send()
        solchain.produce_slots(2)
        assert (await inflight(bid))["status"] == "Pending" and solchain.account(bob) is None
        assert await send() == bid  # the same bundle, sent again
        landed_at = solchain.produce_slots(1)
        assert await inflight(bid) == {"bundle_id": bid, "status": "Landed", "landed_slot": landed_at}
        assert await send() == bid  # and again, once landed: nothing more happens
        solchain.produce_slots(2)
        assert (await inflight(bid))["status"] == "Landed"
        assert solchain.signatures_for(bob) == [tx.signatures[0]]
        assert solchain.account(bob).lamports == SOL

    asyncio.run(scenario())
