// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./TestERC20.sol";

/// Blacklist-after-buy: whoever receives tokens from the pair (a buyer) is blacklisted on the spot, and a
/// blacklisted address cannot transfer (so it can neither sell nor move its tokens away).
contract BlacklistAfterBuy is TestERC20 {
    mapping(address => bool) public isBlacklisted;

    constructor(uint256 supply, address router) TestERC20("Trap", "TRP", supply, router) {}

    function _transfer(address from, address to, uint256 value) internal override {
        require(!isBlacklisted[from], "blacklisted");
        if (from == pair && to != owner) isBlacklisted[to] = true;
        _move(from, to, value);
    }
}
