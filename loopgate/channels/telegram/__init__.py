"""Telegram: the operator channel (aiogram), outside the HTTP surface.

``callbacks`` signs button data, ``render`` writes the messages, ``handlers``
answers updates (button presses, replies, commands), ``inbox`` drops repeated
updates and ``runtime`` wires the bot into the server in webhook or polling
mode, and ``sender`` follows the log to post new requests and edit decided
ones. The webhook route is ``loopgate/web/telegram.py``.
"""
