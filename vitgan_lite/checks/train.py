"""Checkers for the train lesson (filled in with the lesson)."""

__all__: list[str] = []
