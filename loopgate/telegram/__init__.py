"""Telegram: the operator channel (aiogram), outside the HTTP surface.

``callbacks`` signs button data, ``render`` writes the messages, ``handlers``
answers updates (button presses, replies, commands), ``inbox`` drops repeated
updates and ``runtime`` wires the bot into the server in webhook or polling
mode. The sender that posts new requests is a reactor
(``loopgate/reactors/telegram_sender.py``); the webhook route is
``loopgate/web/telegram.py``.
"""
