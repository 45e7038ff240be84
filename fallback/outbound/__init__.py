"""What leaves in the background, never on a visitor's request: notifications, follow-up mail, webhooks."""
