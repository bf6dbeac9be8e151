"""A local EVM chain with the real Uniswap V2 contracts: anvil started on 127.0.0.1, contracts deployed.

Tests, benchmarks, the chaos tool and the dry-run demo use it; a production node never does (it talks to
the RPC endpoints its ``[[venues]]`` entry names). The tools come from npm (``package.json`` at the
repository root: ``npm ci``): anvil's binary (``@foundry-rs/anvil``) and the compiled artifacts of
Uniswap V2 as published by Uniswap (``@uniswap/v2-core``, ``@uniswap/v2-periphery``: Factory, Pair,
Router02, WETH9). Nothing of theirs is copied into this repository.

**Pair init-code hash.** Router02 finds a pair's address without a call, by CREATE2 from a hash of the
pair's creation code hard-coded in its bytecode (``96e8ac42…845f`` for mainnet's pair). The pair that
the factory deploys here must hash to the same value, or the router computes addresses where no pair
lives and every swap reverts. :func:`deploy_uniswap` checks it, and if the published pair artifact ever
hashes differently it patches the router's bytecode with the real hash before deploying (and says so in
``UniswapDeployment.init_code_hash_patched``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3 import Web3

# Mainnet Router02's hard-coded pair init-code hash (UniswapV2Library.pairFor).
MAINNET_PAIR_INIT_CODE_HASH = "96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"

# anvil's default accounts (mnemonic "test test ... junk"): well-known development keys, never funded
# anywhere real. Index 0 deploys; tests hand out the others.
ANVIL_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)
ANVIL_CHAIN_ID = 31337


def repo_root() -> Path:
    """The repository root (where ``package.json`` and ``node_modules/`` are)."""
    return Path(__file__).resolve().parents[3]


def node_modules() -> Path:
    """Where npm installed the tools: ``$SNIPERBOT_NODE_MODULES`` or ``<repo>/node_modules``."""
    return Path(os.environ.get("SNIPERBOT_NODE_MODULES", repo_root() / "node_modules"))


class ToolMissing(RuntimeError):
    """An npm tool or artifact is not installed (run ``npm ci`` at the repository root)."""


def anvil_binary() -> Path:
    """The anvil executable shipped by npm ``@foundry-rs/anvil`` (or one on PATH)."""
    shipped = node_modules() / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if shipped.exists():
        return shipped
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ToolMissing(f"anvil not found at {shipped} nor on PATH: run `npm ci` at {repo_root()}")


def artifact(package: str, name: str) -> dict[str, Any]:
    """A compiled artifact in an npm package's ``build/``: ``{"abi": [...], "bytecode": "0x..."}``."""
    path = node_modules() / package / "build" / f"{name}.json"
    if not path.exists():
        raise ToolMissing(f"artifact {name} not found at {path}: run `npm ci` at {repo_root()}")
    raw = json.loads(path.read_text())
    code = raw.get("bytecode") or raw["evm"]["bytecode"]["object"]
    return {"abi": raw["abi"], "bytecode": code if code.startswith("0x") else "0x" + code}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Anvil:
    """One anvil process on 127.0.0.1: a fresh chain with funded development accounts."""

    def __init__(
        self,
        port: int = 0,
        block_time: float | None = None,
        chain_id: int = ANVIL_CHAIN_ID,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.port = port or _free_port()
        self.block_time = block_time
        self.chain_id = chain_id
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self._w3: Web3 | None = None

    @property
    def rpc_url(self) -> str:
        """HTTP JSON-RPC endpoint."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """WebSocket JSON-RPC endpoint (same port)."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def w3(self) -> Web3:
        """A web3 client on the HTTP endpoint."""
        if self._w3 is None:
            self._w3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 30}))
        return self._w3

    def start(self, timeout_s: float = 30.0) -> Anvil:
        """Start anvil (FIFO transaction order: bundles land in the order sent) and wait until it answers."""
        cmd = [
            str(anvil_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--order", "fifo",
            "--silent",
            *self.extra,
        ]  # fmt: skip
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"anvil exited with {self.proc.returncode} on port {self.port}: {err}")
            try:
                if self.w3.is_connected():
                    return self
            except Exception:  # not listening yet
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"anvil did not answer on {self.rpc_url} within {timeout_s} s")

    def stop(self) -> None:
        """Stop anvil (the chain is gone with it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rpc(self, method: str, *params: Any) -> Any:
        """A raw JSON-RPC call (anvil_*/evm_* methods web3 does not wrap)."""
        response = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response.get("result")

    def snapshot(self) -> str:
        """Take a snapshot of the chain's state (``evm_snapshot``)."""
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        """Go back to a snapshot (``evm_revert``): later blocks and their receipts are gone (a reorg)."""
        if not self.rpc("evm_revert", snapshot_id):
            raise RuntimeError(f"evm_revert {snapshot_id} refused")

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` blocks now."""
        self.rpc("anvil_mine", hex(blocks))

    def set_automine(self, on: bool) -> None:
        """Mine a block per transaction (on) or only on :meth:`mine` / the block time (off)."""
        self.rpc("evm_setAutomine", on)


@dataclass(frozen=True, slots=True)
class UniswapDeployment:
    """Addresses of a Uniswap V2 deployment and the pair init-code hash its router uses."""

    weth: str
    factory: str
    router: str
    init_code_hash: str
    init_code_hash_patched: bool


def send_tx(w3: Web3, key: str, tx: dict[str, Any]) -> dict[str, Any]:
    """Sign ``tx`` with ``key`` (nonce, gas and EIP-1559 fees filled in), send it, wait for its receipt.

    Raises RuntimeError if the transaction reverted.
    """
    account = Account.from_key(key)
    tx = dict(tx)
    tx.setdefault("from", account.address)
    tx.setdefault("chainId", w3.eth.chain_id)
    tx.setdefault("nonce", w3.eth.get_transaction_count(account.address, "pending"))
    tx.setdefault("value", 0)
    if "gasPrice" not in tx:
        base = w3.eth.get_block("latest")["baseFeePerGas"]
        tx.setdefault("maxPriorityFeePerGas", 10**9)
        tx.setdefault("maxFeePerGas", 2 * base + 10**9)
    if "gas" not in tx:
        tx["gas"] = int(w3.eth.estimate_gas(tx) * 1.2) + 10_000
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = dict(w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30))
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {tx_hash.hex()} reverted (to={tx.get('to')})")
    return receipt


def deploy(w3: Web3, key: str, art: dict[str, Any], *args: Any, bytecode: str | None = None) -> str:
    """Deploy a contract from an artifact; its checksummed address."""
    contract = w3.eth.contract(abi=art["abi"], bytecode=bytecode or art["bytecode"])
    sender = Account.from_key(key).address
    tx = contract.constructor(*args).build_transaction({"from": sender, "nonce": 0, "gas": 0})
    tx.pop("nonce")
    tx.pop("gas")
    tx.pop("maxFeePerGas", None)
    tx.pop("maxPriorityFeePerGas", None)
    tx.pop("gasPrice", None)
    receipt = send_tx(w3, key, tx)
    return to_checksum_address(receipt["contractAddress"])


def deploy_uniswap(w3: Web3, key: str = ANVIL_KEYS[0]) -> UniswapDeployment:
    """Deploy WETH9, UniswapV2Factory and UniswapV2Router02 from Uniswap's published artifacts."""
    pair = artifact("@uniswap/v2-core", "UniswapV2Pair")
    router_art = artifact("@uniswap/v2-periphery", "UniswapV2Router02")
    init_hash = keccak(hexstr=pair["bytecode"]).hex().removeprefix("0x")
    router_code = router_art["bytecode"]
    patched = False
    if init_hash != MAINNET_PAIR_INIT_CODE_HASH:
        if router_code.count(MAINNET_PAIR_INIT_CODE_HASH) != 1:
            raise RuntimeError("Router02 bytecode does not hold the mainnet pair init-code hash exactly once")
        router_code = router_code.replace(MAINNET_PAIR_INIT_CODE_HASH, init_hash)
        patched = True
    weth = deploy(w3, key, artifact("@uniswap/v2-periphery", "WETH9"))
    fee_setter = Account.from_key(key).address
    factory = deploy(w3, key, artifact("@uniswap/v2-core", "UniswapV2Factory"), fee_setter)
    router = deploy(w3, key, router_art, factory, weth, bytecode=router_code)
    return UniswapDeployment(weth, factory, router, init_hash, patched)


def deploy_plain_token(w3: Web3, key: str, supply: int) -> str:
    """A plain ERC-20 (Uniswap's test ``ERC20``: 18 decimals, ``supply`` minted to the deployer)."""
    return deploy(w3, key, artifact("@uniswap/v2-periphery", "ERC20"), supply)


def erc20(w3: Web3, address: str) -> Any:
    """A web3 contract object with the ERC-20 ABI at ``address``."""
    return w3.eth.contract(address=address, abi=artifact("@uniswap/v2-core", "ERC20")["abi"])


def router_contract(w3: Web3, uni: UniswapDeployment) -> Any:
    """The deployment's Router02 as a web3 contract."""
    return w3.eth.contract(
        address=uni.router, abi=artifact("@uniswap/v2-periphery", "UniswapV2Router02")["abi"]
    )


def factory_contract(w3: Web3, uni: UniswapDeployment) -> Any:
    """The deployment's factory as a web3 contract."""
    return w3.eth.contract(address=uni.factory, abi=artifact("@uniswap/v2-core", "UniswapV2Factory")["abi"])


def pair_contract(w3: Web3, address: str) -> Any:
    """A UniswapV2Pair as a web3 contract."""
    return w3.eth.contract(address=address, abi=artifact("@uniswap/v2-core", "UniswapV2Pair")["abi"])


def add_liquidity_eth(
    w3: Web3, uni: UniswapDeployment, key: str, token: str, token_amount: int, eth_amount: int
) -> str:
    """Approve and ``addLiquidityETH`` (creates the pair if new); the pair's address."""
    owner = Account.from_key(key).address
    approve = erc20(w3, token).functions.approve(uni.router, token_amount)
    send_tx(
        w3, key, approve.build_transaction({"from": owner, "gas": 100_000, "nonce": 0}) | _fresh(w3, owner)
    )
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    add = router_contract(w3, uni).functions.addLiquidityETH(token, token_amount, 0, 0, owner, deadline)
    tx = add.build_transaction({"from": owner, "value": eth_amount, "gas": 5_000_000, "nonce": 0})
    send_tx(w3, key, tx | _fresh(w3, owner))
    return to_checksum_address(factory_contract(w3, uni).functions.getPair(token, uni.weth).call())


def _fresh(w3: Web3, owner: str) -> dict[str, int]:
    # build_transaction was given a placeholder nonce (so it makes no call of its own): the real one
    return {"nonce": w3.eth.get_transaction_count(owner, "pending")}
