"""Observability: error reporting (Sentry) and the secret scrubber shared with alerts."""
