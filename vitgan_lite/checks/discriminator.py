"""Checkers for the discriminator lesson (filled in with the lesson)."""

__all__: list[str] = []
