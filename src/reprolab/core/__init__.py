"""Shared machinery for every method: registry, configs, seeding, run folders, checkpoints, claims, data.

Import submodules directly (``from reprolab.core.claims import Claim``); this package imports nothing
heavy by itself.
"""
