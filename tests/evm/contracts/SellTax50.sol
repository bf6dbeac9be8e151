// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./TestERC20.sol";

/// A 50 % sell tax: half of every transfer into the pair (a sell) from anyone but the owner goes to the
/// owner. Buys and wallet-to-wallet transfers are untaxed, so only a simulated sell shows it.
contract SellTax50 is TestERC20 {
    uint256 public constant SELL_TAX_BPS = 5_000;

    constructor(uint256 supply, address router) TestERC20("Tax50", "TAX", supply, router) {}

    function _transfer(address from, address to, uint256 value) internal override {
        if (to == pair && from != owner) {
            uint256 tax = (value * SELL_TAX_BPS) / 10_000;
            _move(from, owner, tax);
            value -= tax;
        }
        _move(from, to, value);
    }
}
