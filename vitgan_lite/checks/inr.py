"""Checkers for the inr lesson (filled in with the lesson)."""

__all__: list[str] = []
