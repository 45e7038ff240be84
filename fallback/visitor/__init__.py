"""The visitor's path: the redirect or the page, the contact form, thanks, unsubscribe, the public status."""
