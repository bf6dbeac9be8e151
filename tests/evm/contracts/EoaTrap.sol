// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./TestERC20.sol";

/// A trap a contract probe cannot see: whoever receives from the pair and has no code (an externally
/// owned account - a real wallet) is frozen. A buy by a contract, such as a simulation probe injected
/// by a state override, is left alone. Only simulating the wallet's own buy and sell finds it.
contract EoaTrap is TestERC20 {
    mapping(address => bool) public isFrozen;

    constructor(uint256 supply, address router) TestERC20("Eoa", "EOA", supply, router) {}

    function _transfer(address from, address to, uint256 value) internal override {
        require(!isFrozen[from], "frozen");
        if (from == pair && to != owner && to.code.length == 0) isFrozen[to] = true;
        _move(from, to, value);
    }
}
