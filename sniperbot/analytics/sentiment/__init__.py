"""Sentiment: an offline lexicon scorer with a crypto vocabulary, and the aggregator actor.

* :mod:`.lexicon`: the crypto words and phrases added to VADER, with the rationale of their weights;
* :mod:`.scorer`: a post's score in [-1, 1] (VADER's compound, emoji included);
* :mod:`.subjects`: which assets a post is about (cashtags, known tickers, names, token addresses);
* :mod:`.windows`: per-subject buckets, rolling windows, mention z-scores, the journal form;
* :mod:`.actor`: :class:`~.actor.SentimentActor`, ``[[analysers]] kind = "sentiment"``;
* :mod:`.evaluate`: accuracy and macro-F1 on the labelled sample (``bench/sentiment.py``).
"""
