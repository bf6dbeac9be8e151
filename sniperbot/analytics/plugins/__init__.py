"""Plug-in analysers: any executable reading JSON lines on stdin and writing signals on stdout."""
