"""The node's kernel parts that are not supervision: the last-value cache (more may move here)."""
