"""Loopgate benchmarks: ``python -m bench <subcommand> --help``.

Each subcommand measures one part of Loopgate against a baseline that does the
same work the simplest possible way, in the same run, so the figures compare
like with like on whatever machine runs them.
"""
