"""Checkers for the generator lesson (filled in with the lesson)."""

__all__: list[str] = []
