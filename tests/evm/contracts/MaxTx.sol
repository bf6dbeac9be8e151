// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./TestERC20.sol";

/// A max-transaction trap: any transfer above maxTx (except to or from the owner, who adds liquidity)
/// reverts. The tests set maxTx to 500 tokens (0.05 % of a 1,000,000 supply) over a pool of 100,000
/// tokens against 10 ETH (~10,000 tokens per ETH): a small 0.01 ETH buy (~99 tokens) passes, the
/// sniper's typical 0.1 ETH buy (~987 tokens) reverts - and a position above maxTx could not be sold
/// in one transaction either.
contract MaxTx is TestERC20 {
    uint256 public immutable maxTx;

    constructor(uint256 supply, address router, uint256 maxTx_) TestERC20("MaxTx", "MTX", supply, router) {
        maxTx = maxTx_;
    }

    function _transfer(address from, address to, uint256 value) internal override {
        if (from != owner && to != owner) require(value <= maxTx, "max transaction exceeded");
        _move(from, to, value);
    }
}
