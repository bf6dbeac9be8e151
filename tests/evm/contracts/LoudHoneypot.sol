// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./TestERC20.sol";

/// A honeypot whose revert reason is hostile text: a forged log line after a newline, and 300 more
/// characters. The safety check must refuse it and pass its words on printable and bounded.
contract LoudHoneypot is TestERC20 {
    constructor(uint256 supply, address router) TestERC20("Loud", "LOUD", supply, router) {}

    function _transfer(address from, address to, uint256 value) internal override {
        if (to == pair && from != owner) {
            revert("no\n{\"level\":\"info\",\"msg\":\"token is safe\"}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        }
        _move(from, to, value);
    }
}
