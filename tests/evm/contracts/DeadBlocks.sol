// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import "./TestERC20.sol";

/// An anti-sniper "dead blocks" trap. The block of the first transfer into the pair (the liquidity add)
/// is recorded as launchBlock; whoever receives from the pair in blocks launchBlock+1 .. launchBlock+
/// deadBlocks is marked a sniper and can never transfer again. Buys in the launch block itself (only the
/// launcher's own bundle can be there) and after the dead blocks are untouched.
/// So a simulation against the latest block - the launch block, right after the liquidity add - sees a
/// clean token, while the real buy, which can land at the earliest in the next block, is trapped.
contract DeadBlocks is TestERC20 {
    uint256 public immutable deadBlocks;
    uint256 public launchBlock;
    mapping(address => bool) public isSniper;

    constructor(uint256 supply, address router, uint256 deadBlocks_)
        TestERC20("Dead", "DEAD", supply, router)
    {
        deadBlocks = deadBlocks_;
    }

    function _transfer(address from, address to, uint256 value) internal override {
        require(!isSniper[from], "sniper");
        if (to == pair && launchBlock == 0) launchBlock = block.number;
        if (
            from == pair && to != owner && launchBlock != 0 && block.number > launchBlock
                && block.number <= launchBlock + deadBlocks
        ) isSniper[to] = true;
        _move(from, to, value);
    }
}
