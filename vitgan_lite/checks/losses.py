"""Checkers for the losses lesson (filled in with the lesson)."""

__all__: list[str] = []
