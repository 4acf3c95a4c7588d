"""Slack: the approver channel on Slack (slack_bolt asyncio app, slack_sdk AsyncWebClient)."""
