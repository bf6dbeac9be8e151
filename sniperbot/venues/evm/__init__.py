"""The EVM venue kind: Uniswap V2 swaps on an EVM chain, private submission through Flashbots, the sniper."""
