"""Social scanners: one actor per source (Reddit, X, Telegram, Discord, RSS/Atom, CoinGecko)."""
