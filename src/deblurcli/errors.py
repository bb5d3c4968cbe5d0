"""Typed errors that the CLI turns into one-line messages.

Every error the library raises on purpose is a :class:`DeblurError`; its ``str()`` is a complete,
single-line message meant for a user (no traceback needed). Anything else that escapes is a bug.
"""

from __future__ import annotations

from pathlib import Path


class DeblurError(Exception):
    """Base class of every error deblurcli raises on purpose."""


class ImageError(DeblurError):
    """An image file could not be read or written (missing, unreadable, corrupt, unsupported)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ImageTooLargeError(ImageError):
    """The image's declared size exceeds the decompression-bomb guard."""


class InputError(DeblurError):
    """A path, folder or glob given on the command line resolved to nothing usable."""


class ModelError(DeblurError):
    """A model could not be resolved, downloaded, verified or loaded."""


class VideoError(DeblurError):
    """A video could not be decoded or does not suit the requested operation."""


class DatasetError(DeblurError):
    """A dataset folder does not have a layout deblurcli understands."""


class WeightsNotAvailableError(ModelError):
    """A named model has no weights bundled, cached or published yet."""


class ChecksumError(ModelError):
    """A weights file does not match its expected sha256 (the bad file is removed)."""


class UnknownModelError(ModelError):
    """A model name that is not registered, or a ``--model`` value of no known form (usage error)."""


class NetworkError(ModelError):
    """The Hub could not be reached, or a download failed part-way: a problem of the network, not
    of the command line (exit status 1, where other model errors are usage errors, 2)."""
