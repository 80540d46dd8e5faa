"""Typed errors for model artifacts (core: imports nothing of ours).

- :class:`ArtifactMissingError` (a ``FileNotFoundError``): a registered model's file is not there; the
  message names the command that makes it.
- :class:`ArtifactError` (a ``ValueError``): a file exists but must not or cannot be loaded: truncated,
  corrupt, a malformed manifest or descriptor (the message names the file and the field), a sha256 that
  does not match the manifest, or a format that could run code on load (pickle).
"""
from __future__ import annotations


class ArtifactMissingError(FileNotFoundError):
    """A registered model's artifact file is not there; the message names the command that trains it."""


class ArtifactError(ValueError):
    """A model artifact exists but cannot be loaded (truncated, corrupt, wrong format, wrong sha256)."""
