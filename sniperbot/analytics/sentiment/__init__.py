"""Sentiment: an offline lexicon scorer with a crypto vocabulary, and the aggregator actor."""
