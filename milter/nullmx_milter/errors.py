"""The project's own exception hierarchy."""

from __future__ import annotations


class NullMxError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(NullMxError):
    """A configuration value is missing, of the wrong type or out of range."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class ReplyError(NullMxError):
    """An SMTP reply would break RFC 5321 or libmilter's rules."""
