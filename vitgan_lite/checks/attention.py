"""Checkers for the attention lesson (filled in with the lesson)."""

__all__: list[str] = []
