"""Serving: the app factory, gunicorn and its worker, the checker's threads."""
