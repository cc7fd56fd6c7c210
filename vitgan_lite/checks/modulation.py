"""Checkers for the modulation lesson (filled in with the lesson)."""

__all__: list[str] = []
