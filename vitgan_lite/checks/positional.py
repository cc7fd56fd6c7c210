"""Checkers for the positional lesson (filled in with the lesson)."""

__all__: list[str] = []
