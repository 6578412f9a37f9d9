"""Extraction of device metrics from datasets, and the bridge to IBM aihwkit.

May import ``memdrift.data``; never ``memdrift.emulator`` internals (data flows one way).
"""
