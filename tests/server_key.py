"""The server key every test app uses."""

from __future__ import annotations

from loopgate.config import SecretsConfig

TEST_SECRETS = SecretsConfig(key="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
"""A fixed server key, so that no test app makes a key file in the working directory."""
