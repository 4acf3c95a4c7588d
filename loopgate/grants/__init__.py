"""Standing grants: "approve, and allow this for 30 minutes".

An approver answering a ``grantable`` request may also grant its session the
same action (``scope: exact``, by fingerprint) or any call of the same tool
(``scope: tool``) until ``expires_at``. The grant is issued in the decision's
own append (:mod:`loopgate.domain.request`); the request commands look it up
at creation (:func:`loopgate.commands.approvals.standing_grant`); this package
lists and revokes them.
"""

from loopgate.grants.service import Grants, GrantView

__all__ = ["GrantView", "Grants"]
