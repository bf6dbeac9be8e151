// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./TestERC20.sol";

/// An honest fee-on-transfer token: 2 % of every transfer is burnt, fixed forever (no setter, no
/// exemption). Router02's plain swap functions mishandle it (buys deliver less than amountOutMin, sells
/// revert with "UniswapV2: K"); the ...SupportingFeeOnTransferTokens ones work. Within a 10 % tax rule.
contract FeeOnTransferToken is TestERC20 {
    uint256 public constant FEE_BPS = 200;

    constructor(uint256 supply, address router) TestERC20("Fee2", "FOT", supply, router) {}

    function _transfer(address from, address to, uint256 value) internal override {
        uint256 fee = (value * FEE_BPS) / 10_000;
        _burn(from, fee);
        _move(from, to, value - fee);
    }
}
