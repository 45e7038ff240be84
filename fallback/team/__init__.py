"""The team's side: the admin area, the control API, metrics, tokens, sessions, log-ins, export."""
