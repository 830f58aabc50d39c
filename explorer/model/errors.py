"""What goes wrong with a model a user points at, said so the user can act on it."""

from __future__ import annotations


class ModelLoadError(ValueError):
    """A model folder that cannot be used, with what to do about it."""
