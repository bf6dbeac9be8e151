// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./TestERC20.sol";

/// A max-wallet limit: no address but the owner and the pair may hold more than maxWallet. The tests set
/// it to 500 tokens, like MaxTx: a 0.01 ETH buy (~99 tokens) passes, the sniper's 0.1 ETH (~987) reverts.
contract MaxWallet is TestERC20 {
    uint256 public immutable maxWallet;

    constructor(uint256 supply, address router, uint256 maxWallet_)
        TestERC20("MaxWallet", "MWL", supply, router)
    {
        maxWallet = maxWallet_;
    }

    function _transfer(address from, address to, uint256 value) internal override {
        if (to != owner && to != pair) require(balanceOf[to] + value <= maxWallet, "max wallet exceeded");
        _move(from, to, value);
    }
}
