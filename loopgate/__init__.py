"""Loopgate: a human in the loop of AI agents, with every decision in an auditable log."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("loopgate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
