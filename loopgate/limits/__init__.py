"""Rate limits: a token bucket per caller for creating requests, answering and logging in.

Pure arithmetic in ``domain/bucket.py``; where the buckets live (memory or
Postgres) in ``buckets.py``; the configured limits and the 429 in
``limiter.py``. The caps on parked long-polls and event streams are counted
where the waiters park, in the hub (``hub.py``).
"""

from loopgate.limits.limiter import Action, Limits

__all__ = ["Action", "Limits"]
