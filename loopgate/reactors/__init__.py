"""Reactors: what follows the log (the follower, its lease and checkpoint) and the expirer.

The channels' senders (``loopgate/channels/``) are built on :mod:`loopgate.reactors.follower`.
"""
