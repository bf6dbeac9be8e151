// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./TestERC20.sol";

/// A plain ERC-20: no fee, no trap, no owner power. The control case the safety check must let through.
contract PlainToken is TestERC20 {
    constructor(uint256 supply, address router) TestERC20("Plain", "PLN", supply, router) {}
}
