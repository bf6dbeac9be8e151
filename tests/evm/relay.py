"""A local Flashbots relay over anvil (tests only): the relay's JSON-RPC, signatures checked, blocks built.

Speaks the relay's wire format (docs.flashbots.net "RPC endpoint"): ``POST /`` JSON-RPC with
``eth_callBundle``, ``eth_sendBundle`` and ``flashbots_getBundleStatsV2``, every request authenticated by
``X-Flashbots-Signature: <address>:<sig>`` (EIP-191 signature of the text ``"0x" + hex(keccak256(body))``,
recovered and compared with the address, as flashbots/go-utils ``signature.Verify`` does). A missing header
is refused with the relay's ``signature is required``, a wrong one with ``error in signature check <addr>``
(JSON-RPC code -32600, HTTP 403).

The test drives block production: anvil runs with automine OFF, and :meth:`LocalRelay.build_block` builds
the next block from the bundles targeted at it, like a builder: each bundle is tried on top of the bundles
already accepted for the block (on the simulation chain below: send, ``evm_mine``, receipts); it is
accepted whole (all its transactions in order, none reverting unless listed in ``revertingTxHashes``) or
dropped whole; then the accepted transactions are sent and mined for real, in one block. Bundles targeted
at another block are not considered. :meth:`build_empty_block` is a block built without the relay (a
proposer that does not run mev-boost). All chain work is serialised by one lock (the server thread and
the test thread).

**Simulations run on the relay's own chain**, as a real relay's run on its own node: a second anvil
forked from the test chain (``--fork-url``), reset to the test chain's head before each trial
(``anvil_reset``), where the bundle is sent, mined and read. Why not ``evm_snapshot``/``evm_revert`` on
the test chain itself: every simulated block would be mined on it and taken back, and whatever follows
the chain (the node's feed and pool watcher) rightly saw each one as a reorg: a snipe benchmark run logged
18-21 false ``pool_reorg`` warnings. The test chain now only ever grows by the blocks the relay builds.
The simulation chain's pool is empty: a bundle is simulated on the head's state alone, as a relay does
(bundles go at the top of a block). The built block also mines what is pending in the test chain's own
pool, in the order anvil received it (FIFO: before the bundles); no test sends public transactions
that conflict with a bundle in the same block.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak
from web3 import Web3

from sniperbot.venues.evm.devchain import Anvil

MISSING_SIGNATURE = "signature is required"
BAD_SIGNATURE = "error in signature check"


def _hex(raw: bytes) -> str:
    return "0x" + bytes(raw).hex()


def revert_reason(output: str | None) -> str:
    """The reason of a revert's return data: ``Error(string)`` decoded, ``Panic(uint)``, else the hex."""
    data = bytes.fromhex((output or "0x").removeprefix("0x"))
    if data[:4] == bytes.fromhex("08c379a0"):
        return str(abi_decode(["string"], data[4:])[0])
    if data[:4] == bytes.fromhex("4e487b71"):
        return f"panic 0x{abi_decode(['uint256'], data[4:])[0]:02x}"
    return _hex(data)


@dataclass
class Bundle:
    """A bundle as the relay received it (``eth_sendBundle``)."""

    txs: list[str]
    block: int
    reverting: frozenset[str]
    hash: str
    signer: str
    received_at: float
    simulated_at: float | None = None
    considered: bool = False
    included: bool = False


@dataclass
class BuiltBlock:
    """What :meth:`LocalRelay.build_block` did: the block, bundles included and dropped (with why)."""

    number: int
    included: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    tx_hashes: list[str] = field(default_factory=list)


class LocalRelay:
    """A Flashbots relay on 127.0.0.1 (port 0) in front of ``anvil``; see the module docstring."""

    def __init__(self, anvil: Anvil) -> None:
        self.anvil = anvil
        # The relay's own client: its calls come from the server thread and the test thread (under the lock).
        self.w3 = Web3(Web3.HTTPProvider(anvil.rpc_url, request_kwargs={"timeout": 30}))
        self.chain_lock = threading.RLock()
        self.sim: Anvil | None = None  # the simulation chain, a fork of ``anvil`` (started by start())
        self.requests: list[dict[str, Any]] = []  # every request: method, params, signer, at, refused
        self.bundles: list[Bundle] = []  # every eth_sendBundle accepted, in order
        self.blocks: list[BuiltBlock] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relay", daemon=True)
        self._runner: web.AppRunner | None = None
        self._transports: set[asyncio.BaseTransport] = set()

    # ---- lifecycle
    @property
    def url(self) -> str:
        """The relay endpoint (``POST /``)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalRelay:
        """Turn anvil's automine off (the relay builds the blocks) and serve on an ephemeral port."""
        self.anvil.set_automine(False)
        self.sim = Anvil(extra=("--fork-url", self.anvil.rpc_url, "--no-mining")).start()
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.add_routes([web.post("/", self._handle)])
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            asyncio.run_coroutine_threadsafe(self._loop.shutdown_default_executor(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()
        if self.sim is not None:
            self.sim.stop()

    def __enter__(self) -> LocalRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drop_connections(self) -> None:
        """Close every client connection (what a relay or its load balancer does to idle keep-alives)."""

        async def close() -> None:
            for transport in self._transports:
                transport.close()
            self._transports.clear()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)

    # ---- what tests read
    def sends(self) -> list[tuple[str, int]]:
        """(bundle hash, target block) of every accepted ``eth_sendBundle``, in order."""
        return [(b.hash, b.block) for b in self.bundles]

    def methods(self) -> list[str]:
        """The method of every request, refused ones included, in order."""
        return [r["method"] for r in self.requests]

    def connections(self) -> int:
        """How many client connections (distinct peer ports) the requests came on."""
        return len({r["peer"] for r in self.requests})

    # ---- JSON-RPC
    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = json.loads(body)
        except ValueError:
            return _error(None, -32700, "parse error", 400)
        rid = payload.get("id") if isinstance(payload, dict) else None
        method = payload.get("method") if isinstance(payload, dict) else None
        peer = request.transport.get_extra_info("peername") if request.transport else None
        record: dict[str, Any] = {
            "method": method,
            "params": payload.get("params"),
            "signer": None,
            "peer": peer,
            "at": time.time(),  # when the request arrived (wall clock, same machine): the benchmarks' stamp
        }
        if request.transport is not None:
            self._transports.add(request.transport)
        self.requests.append(record)
        header = request.headers.get("X-Flashbots-Signature", "")
        if not header:
            record["refused"] = MISSING_SIGNATURE
            return _error(None, -32600, MISSING_SIGNATURE, 403)
        address, _, signature = header.partition(":")
        signer = _recover(body, signature)
        if signer is None or signer.lower() != address.lower():
            record["refused"] = f"{BAD_SIGNATURE} {address}"
            return _error(rid, -32600, f"{BAD_SIGNATURE} {address}", 403)
        record["signer"] = signer
        params = payload.get("params") or [{}]
        handler = {
            "eth_callBundle": self._call_bundle,
            "eth_sendBundle": self._send_bundle,
            "flashbots_getBundleStatsV2": self._bundle_stats,
        }.get(str(method))
        if handler is None:
            return _error(rid, -32601, f"the method {method} does not exist/is not available", 200)
        if not isinstance(params, list) or not params or not isinstance(params[0], dict):
            return _error(rid, -32602, "invalid params: expected [{...}]", 200)
        try:
            # Chain work is blocking (web3 over HTTP to anvil): off the server loop.
            result = await asyncio.get_running_loop().run_in_executor(None, handler, params[0], signer)
        except RpcError as e:
            return _error(rid, e.code, e.message, 200)
        return web.json_response({"jsonrpc": "2.0", "id": rid, "result": result})

    def _send_bundle(self, p: dict[str, Any], signer: str) -> dict[str, str]:
        txs = _txs(p)
        try:
            block = int(str(p["blockNumber"]), 16)
        except (KeyError, ValueError):
            raise RpcError(-32602, "invalid params: blockNumber must be a hex block number") from None
        reverting = frozenset(h.lower() for h in p.get("revertingTxHashes") or [])
        b = Bundle(txs, block, reverting, _bundle_hash(txs), signer, time.time())
        self.bundles.append(b)
        return {"bundleHash": b.hash}

    def _call_bundle(self, p: dict[str, Any], signer: str) -> dict[str, Any]:
        txs = _txs(p)
        with self.chain_lock:
            head = self.w3.eth.block_number
            state = p.get("stateBlockNumber", "latest")
            if state not in ("latest", hex(head)):
                raise RpcError(-32602, f"stateBlockNumber {state}: this relay simulates on 'latest' only")
            trial = self._trial(txs, keep=False)
        if trial["error"]:
            raise RpcError(-32000, trial["error"])
        results, coinbase_total, gas_fees_total, gas_total = [], 0, 0, 0
        base_fee = trial["base_fee"]
        for raw, receipt, tx in zip(txs, trial["receipts"], trial["txs"], strict=True):
            price = int(receipt["effectiveGasPrice"])
            gas = int(receipt["gasUsed"])
            coinbase = gas * (price - base_fee)
            entry: dict[str, Any] = {
                "txHash": _hex(keccak(hexstr=raw)),
                "gasUsed": gas,
                "gasPrice": str(price),
                "gasFees": str(gas * price),
                "fromAddress": Web3.to_checksum_address(tx["from"]),
                "toAddress": Web3.to_checksum_address(tx["to"]) if tx.get("to") else None,
                "coinbaseDiff": str(coinbase),
                "ethSentToCoinbase": "0",
            }
            if receipt["status"] == 1:
                entry["value"] = "0x"
            else:
                entry["error"] = "execution reverted"
                entry["revert"] = trial["reverts"].get(entry["txHash"], "")
            results.append(entry)
            coinbase_total, gas_fees_total, gas_total = (
                coinbase_total + coinbase,
                gas_fees_total + gas * price,
                gas_total + gas,
            )
        return {
            "results": results,
            "bundleHash": _bundle_hash(txs),
            "bundleGasPrice": str(gas_fees_total // gas_total if gas_total else 0),
            "coinbaseDiff": str(trial["coinbase_diff"]),
            "ethSentToCoinbase": str(trial["coinbase_diff"] - coinbase_total),
            "gasFees": str(gas_fees_total),
            "stateBlockNumber": head,
            "totalGasUsed": gas_total,
        }

    def _bundle_stats(self, p: dict[str, Any], signer: str) -> dict[str, Any]:
        wanted = str(p.get("bundleHash", "")).lower()
        block = int(str(p.get("blockNumber", "0x0")), 16)
        found = [b for b in self.bundles if b.hash == wanted and b.block == block and b.signer == signer]
        if not found:
            raise RpcError(-32000, "bundle not found")
        b = found[-1]
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"  # noqa: E731
        return {
            "isHighPriority": True,
            "isSimulated": b.simulated_at is not None,
            "simulatedAt": iso(b.simulated_at) if b.simulated_at else None,
            "receivedAt": iso(b.received_at),
            "consideredByBuildersAt": [{"pubkey": "0xlocal", "timestamp": iso(b.simulated_at)}]
            if b.considered and b.simulated_at
            else [],
            "sealedByBuildersAt": [{"pubkey": "0xlocal", "timestamp": iso(b.simulated_at)}]
            if b.included and b.simulated_at
            else [],
        }

    # ---- chain work (callers hold chain_lock)
    def _trial(self, txs: list[str], keep: bool) -> dict[str, Any]:
        """Send ``txs`` and mine one block, on the test chain if ``keep``, else on the simulation chain."""
        chain = self.anvil if keep else self._simulation_chain()
        w3 = chain.w3
        parent = w3.eth.get_block("latest")
        coinbase_before = w3.eth.get_balance(_ZERO, parent["number"])
        out: dict[str, Any] = {"error": None, "receipts": [], "txs": [], "reverts": {}, "base_fee": 0}
        hashes: list[str] = []
        try:
            for raw in txs:
                try:
                    hashes.append(_hex(w3.eth.send_raw_transaction(raw)))
                except Exception as e:  # the node refused it (nonce, funds, fee, encoding)
                    out["error"] = f"err: {_rpc_message(e)}; txhash {_hex(keccak(hexstr=raw))}"
                    return out
            chain.rpc("evm_mine")
            block = w3.eth.get_block("latest")
            out["base_fee"] = int(block.get("baseFeePerGas", 0))
            mined = [_hex(h) for h in block["transactions"]]
            for h in hashes:
                if h not in mined:
                    out["error"] = f"err: transaction {h} not executable in block {block['number']}"
                    return out
                receipt = w3.eth.get_transaction_receipt(h)
                out["receipts"].append(receipt)
                out["txs"].append(w3.eth.get_transaction(h))
                if receipt["status"] != 1:
                    trace = chain.rpc("debug_traceTransaction", h, {"tracer": "callTracer"})
                    out["reverts"][h] = revert_reason(trace.get("output"))
            out["coinbase_diff"] = w3.eth.get_balance(_ZERO, block["number"]) - coinbase_before
            out["tx_hashes"] = mined
            return out
        finally:
            if not keep:  # a transaction sent but not mined would stay in the pool until the next reset
                for h in hashes:
                    chain.rpc("anvil_dropTransaction", h)

    def _simulation_chain(self) -> Anvil:
        """The simulation chain, reset to a fork of the test chain's head (its pool empty)."""
        assert self.sim is not None, "the relay is not started"
        head = int(self.w3.eth.block_number)
        self.sim.rpc("anvil_reset", {"forking": {"jsonRpcUrl": self.anvil.rpc_url, "blockNumber": head}})
        self.sim.set_automine(False)  # the bundle's transactions go in one block
        return self.sim

    def _rpc(self, method: str, *params: Any) -> Any:
        response = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response.get("result")

    def _accepts(self, bundle: Bundle, trial: dict[str, Any]) -> str | None:
        """Why ``bundle`` cannot be included given its trial (None: it can)."""
        if trial["error"]:
            return str(trial["error"])
        own = {_hex(keccak(hexstr=raw)) for raw in bundle.txs}
        for receipt in trial["receipts"]:
            h = _hex(receipt["transactionHash"])
            if h in own and receipt["status"] != 1 and h not in bundle.reverting:
                return f"transaction {h} reverted: {trial['reverts'].get(h, '')}"
        return None

    # ---- block production (test thread)
    def build_block(self) -> BuiltBlock:
        """Build the next block from the bundles targeted at it (each atomically, or dropped whole)."""
        with self.chain_lock:
            target = self.w3.eth.block_number + 1
            built = BuiltBlock(target)
            accepted: list[str] = []
            for b in [b for b in self.bundles if b.block == target]:
                if b.hash in built.included:
                    continue  # the same bundle sent twice for this block
                b.considered = True
                trial = self._trial(accepted + b.txs, keep=False)
                b.simulated_at = b.simulated_at or time.time()
                why = self._accepts(b, trial)
                if why is None:
                    accepted += b.txs
                    built.included.append(b.hash)
                    for same in self.bundles:
                        if same.hash == b.hash and same.block == target:
                            same.included = True
                else:
                    built.dropped.append((b.hash, why))
            final = self._trial(accepted, keep=True)
            if final["error"]:  # cannot happen: the same transactions on the same state just succeeded
                raise RuntimeError(f"local relay: the built block {target} failed: {final['error']}")
            built.tx_hashes = final["tx_hashes"]
            if self.w3.eth.block_number != target:
                raise RuntimeError(f"local relay built block {self.w3.eth.block_number}, expected {target}")
            self.blocks.append(built)
            return built

    def build_empty_block(self) -> int:
        """Mine the next block without any bundle (a proposer without mev-boost); its number."""
        with self.chain_lock:
            self._rpc("evm_mine")
            return int(self.w3.eth.block_number)


class RpcError(Exception):
    """A JSON-RPC error the relay answers."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_ZERO = "0x0000000000000000000000000000000000000000"  # anvil's coinbase


def _error(rid: Any, code: int, message: str, status: int) -> web.Response:
    body = {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
    return web.json_response(body, status=status)


def _recover(body: bytes, signature: str) -> str | None:
    # As go-utils: the signature must be 0x-hex (hexutil.Decode); the signed text is the 0x-hex body hash.
    if not signature.startswith("0x"):
        return None
    try:
        return str(Account.recover_message(encode_defunct(text=_hex(keccak(body))), signature=signature))
    except Exception:  # malformed signature bytes
        return None


def _txs(p: dict[str, Any]) -> list[str]:
    txs = p.get("txs")
    if (
        not isinstance(txs, list)
        or not txs
        or not all(isinstance(t, str) and t.startswith("0x") for t in txs)
    ):
        raise RpcError(-32602, "invalid params: txs must be a non-empty list of 0x-hex signed transactions")
    try:
        for t in txs:
            Account.recover_transaction(t)
    except Exception:
        raise RpcError(-32602, "unable to decode txs") from None
    return [t.lower() for t in txs]


def _bundle_hash(txs: list[str]) -> str:
    return _hex(keccak(b"".join(keccak(hexstr=t) for t in txs)))


def _rpc_message(e: Exception) -> str:
    # web3 8 raises Web3RPCError carrying the node's JSON-RPC error object
    response = getattr(e, "rpc_response", None)
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        return str(response["error"].get("message"))
    return str(e)
