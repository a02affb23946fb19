"""One family of errors for everything the book can refuse.

Every error the library raises on purpose derives from :class:`P2NError`, and its message names
what is wrong and how to fix it (usually the command that rebuilds a part). The command line
catches :class:`P2NError` and nothing else, so a project error prints ``p2n: error: ...`` while a
bug still shows its traceback.
"""
from __future__ import annotations


class P2NError(Exception):
    """Base class of every error the book raises on purpose."""


class InputError(P2NError, ValueError):
    """A user input (image, prompt, option) is unusable; the message says what would work."""


class ArtifactError(P2NError, RuntimeError):
    """A trained part or cache is missing, unreadable, or was made from other inputs."""


class StoreError(ArtifactError):
    """The NeRF dataset on disk is missing, incomplete or damaged."""


class EncoderNotFoundError(ArtifactError):
    """An encoder checkpoint is missing; the message names the path and how to create it."""


class EncoderWeightsError(EncoderNotFoundError):
    """The ViT-B-32 openai weights are not on this machine; the message says where to put them."""


class CheckpointMismatchError(ArtifactError):
    """A checkpoint was made for another profile or config; the message says how to fix it."""


class ClaimsFileError(P2NError, ValueError):
    """A claims file does not match the schema; the message names the file and the fix."""
