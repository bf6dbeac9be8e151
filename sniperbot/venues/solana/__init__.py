"""The Solana venue: swaps through a Jupiter-shaped aggregator, Jito bundles, new pools, token safety."""
