"""Social scanners: one actor per source (Reddit, X, Telegram, Discord, RSS/Atom, CoinGecko).

Each is an optional ``[[analysers]]`` entry (fields in :mod:`sniperbot.analytics.scanners.config`) and
runs as ``analyser.<id>`` under the ``analysis`` supervisor. The post scanners publish
:class:`~sniperbot.messages.Post` on ``social.<id>.`` (they do not score them: the sentiment actor
does); CoinGecko publishes :class:`~sniperbot.messages.Signal` directly. Every scanner publishes its
health as :class:`~sniperbot.messages.AnalyserStatus` on ``status.analyser.<id>``. What they share
(rate limits, backoff, the stale flag, dedup across restarts, secrets) is in
:mod:`sniperbot.analytics.scanners.base`. For example::

    [[analysers]]
    kind = "reddit"
    id = "reddit"
    subreddits = ["CryptoCurrency", "SatoshiStreetBets"]
    poll_interval_s = 30.0

    [[analysers]]
    kind = "x"
    id = "x"
    queries = ["$PEPE -is:retweet lang:en"]
    bearer_token_file = "/etc/sniperbot/x.token"

    [[analysers]]
    kind = "telegram_channel"
    id = "tg"
    channels = ["@whale_alert_io"]
    bot_token_file = "/etc/sniperbot/tg-scanner.token"

    [[analysers]]
    kind = "coingecko"
    id = "coingecko"
    coin_ids = ["bitcoin", "ethereum"]
"""
