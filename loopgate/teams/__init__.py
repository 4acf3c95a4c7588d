"""Teams: workspaces, their members and roles, groups, invitations and linked accounts.

The pure rules are :mod:`loopgate.domain.teams`; this package reads the query
tables and appends the events. It sits above the commands and below accounts,
which builds every credential's :class:`~loopgate.commands.base.Actor` from
:meth:`Teams.membership`.
"""

from loopgate.teams.service import (
    GroupView,
    IdentityView,
    InvitationView,
    Membership,
    MemberView,
    Teams,
)

__all__ = ["GroupView", "IdentityView", "InvitationView", "MemberView", "Membership", "Teams"]
