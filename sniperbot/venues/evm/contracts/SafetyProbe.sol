// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

// The token safety check's probe (sniperbot.venues.evm.safety). Never deployed: its runtime code is
// injected at an unused address by an eth_call state override, with ETH to spend, and probe() runs a
// buy, a wallet-to-wallet transfer and a sell of a token through Uniswap V2 Router02 in ONE call, in
// the block the real buy would land in (block overrides). Every failure is caught here and returned as
// data, so one call yields the whole picture. Runtime code only: no constructor state, no immutables.

interface IERC20Probe {
    function balanceOf(address) external view returns (uint256);
    function approve(address, uint256) external returns (bool);
    function transfer(address, uint256) external returns (bool);
}

interface IRouterProbe {
    function getAmountsOut(uint256 amountIn, address[] calldata path) external view returns (uint256[] memory);
    function swapExactETHForTokensSupportingFeeOnTransferTokens(
        uint256 amountOutMin, address[] calldata path, address to, uint256 deadline
    ) external payable;
    function swapExactTokensForETHSupportingFeeOnTransferTokens(
        uint256 amountIn, uint256 amountOutMin, address[] calldata path, address to, uint256 deadline
    ) external;
}

contract SafetyProbe {
    struct Result {
        uint256 blockNumber; // the block the probe ran in (proves the block override took effect)
        uint256 timestamp;
        bool buyOk;
        string buyError;
        uint256 buyExpected; // router.getAmountsOut before the buy
        uint256 buyReceived; // what the probe's balance really grew by
        uint256 buyGas;
        bool transferOk;
        string transferError;
        uint256 transferSent;
        uint256 transferReceived; // what the sink's balance really grew by
        bool sellOk;
        string sellError;
        string sellTokenError; // the token's own revert reason for a transfer into the pair, if the sell failed
        uint256 sellAmount; // the probe's whole remaining balance
        uint256 sellExpected; // router.getAmountsOut for sellAmount, after the buy
        uint256 sellReceived; // ETH the probe really got back
        uint256 sellGas;
    }

    receive() external payable {}

    /// Buy `token` for msg.value ETH, send transferBps of it to `sink`, sell the rest; report everything.
    /// `pair` is the token/WETH pair (only used to hear the token's own reason when a sell fails).
    function probe(
        address router,
        address token,
        address weth,
        address pair,
        address sink,
        uint256 transferBps
    )
        external
        payable
        returns (Result memory r)
    {
        r.blockNumber = block.number;
        r.timestamp = block.timestamp;
        IRouterProbe rt = IRouterProbe(router);
        IERC20Probe tk = IERC20Probe(token);
        address[] memory path = new address[](2);
        path[0] = weth;
        path[1] = token;

        try rt.getAmountsOut(msg.value, path) returns (uint256[] memory amounts) {
            r.buyExpected = amounts[1];
        } catch (bytes memory err) {
            r.buyError = string.concat("quote: ", _reason(err));
            return r;
        }
        uint256 before = tk.balanceOf(address(this));
        uint256 gas0 = gasleft();
        try rt.swapExactETHForTokensSupportingFeeOnTransferTokens{value: msg.value}(
            0, path, address(this), block.timestamp
        ) {
            r.buyGas = gas0 - gasleft();
            r.buyOk = true;
            r.buyReceived = tk.balanceOf(address(this)) - before;
        } catch (bytes memory err) {
            r.buyError = _reason(err);
            return r;
        }

        r.transferSent = (r.buyReceived * transferBps) / 10_000;
        if (r.transferSent > 0) {
            uint256 sinkBefore = tk.balanceOf(sink);
            try tk.transfer(sink, r.transferSent) returns (bool ok) {
                r.transferOk = ok;
                r.transferReceived = tk.balanceOf(sink) - sinkBefore;
                if (!ok) r.transferError = "transfer returned false";
            } catch (bytes memory err) {
                r.transferError = _reason(err);
            }
        }

        r.sellAmount = tk.balanceOf(address(this));
        if (r.sellAmount == 0) {
            r.sellError = "nothing to sell";
            return r;
        }
        try tk.approve(router, type(uint256).max) {}
        catch (bytes memory err) {
            r.sellError = string.concat("approve: ", _reason(err));
            return r;
        }
        path[0] = token;
        path[1] = weth;
        try rt.getAmountsOut(r.sellAmount, path) returns (uint256[] memory amounts) {
            r.sellExpected = amounts[1];
        } catch {}
        uint256 eth0 = address(this).balance;
        gas0 = gasleft();
        try rt.swapExactTokensForETHSupportingFeeOnTransferTokens(
            r.sellAmount, 0, path, address(this), block.timestamp
        ) {
            r.sellGas = gas0 - gasleft();
            r.sellOk = true;
            r.sellReceived = address(this).balance - eth0;
        } catch (bytes memory err) {
            r.sellError = _reason(err);
            // The router's safeTransferFrom hides the token's own words ("TRANSFER_FROM_FAILED"): hear
            // them from a plain transfer into the pair, which is what a sell starts with.
            try tk.transfer(pair, r.sellAmount) {}
            catch (bytes memory tokenErr) {
                r.sellTokenError = _reason(tokenErr);
            }
        }
    }

    function _reason(bytes memory err) internal pure returns (string memory) {
        if (err.length == 0) return "reverted without a reason";
        bytes4 sel = bytes4(err);
        if (sel == 0x08c379a0 && err.length >= 68) {
            // Error(string): skip the selector and decode the string
            bytes memory body = new bytes(err.length - 4);
            for (uint256 i = 4; i < err.length; i++) body[i - 4] = err[i];
            return abi.decode(body, (string));
        }
        if (sel == 0x4e487b71 && err.length >= 36) {
            bytes memory body = new bytes(err.length - 4);
            for (uint256 i = 4; i < err.length; i++) body[i - 4] = err[i];
            return string.concat("panic ", _hex(abi.decode(body, (uint256)), 1));
        }
        return string.concat("custom error ", _hex(uint32(sel), 4));
    }

    function _hex(uint256 value, uint256 bytesLen) internal pure returns (string memory) {
        bytes memory digits = "0123456789abcdef";
        bytes memory out = new bytes(2 + 2 * bytesLen);
        out[0] = "0";
        out[1] = "x";
        for (uint256 i = 0; i < 2 * bytesLen; i++) {
            out[1 + 2 * bytesLen - i] = digits[value & 0xf];
            value >>= 4;
        }
        return string(out);
    }
}
