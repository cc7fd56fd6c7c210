"""Checkers for the spectral lesson (filled in with the lesson)."""

__all__: list[str] = []
