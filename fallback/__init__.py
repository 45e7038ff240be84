"""fallback: a standby app that keeps your visitors' details while your main site is down."""

__version__ = "0.1.0"
