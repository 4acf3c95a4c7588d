"""Signed single-use receipts of approved actions (``Receipts`` in ``service.py``).

``keys.py``: the Ed25519 signing keys, public halves in the log, private
halves derived from the server key. ``tokens.py``: a decision's claims as a
compact JWS. ``service.py``: mint, redeem, the JWKS, rotation.
"""

from loopgate.receipts.service import Receipts, Redemption

__all__ = ["Receipts", "Redemption"]
