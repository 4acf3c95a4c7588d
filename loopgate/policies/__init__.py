"""Policies: each workspace's ordered rules, kept as ``PolicySet`` events and read back.

The pure rules (matching, tightening, validation, :func:`~loopgate.domain.policy.explain`)
are :mod:`loopgate.domain.policy`; this package reads the ``policies`` query
table and appends the events. :class:`Policies` is the
:class:`~loopgate.commands.approvals.PolicySource` the request commands ask at
creation.
"""

from loopgate.policies.service import (
    Policies,
    PolicyFile,
    PolicyView,
    check_may_set,
    cli_actor,
    load_policy_file,
)

__all__ = [
    "Policies",
    "PolicyFile",
    "PolicyView",
    "check_may_set",
    "cli_actor",
    "load_policy_file",
]
