// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./TestERC20.sol";

/// An owner-mintable supply: trades like a plain token, but the owner can mint any amount at any time
/// (and dump it into the pool). Only the bytecode shows it: the mint(address,uint256) selector.
contract Mintable is TestERC20 {
    constructor(uint256 supply, address router) TestERC20("Mint", "MNT", supply, router) {}

    function mint(address to, uint256 value) external {
        require(msg.sender == owner, "not owner");
        totalSupply += value;
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }
}
