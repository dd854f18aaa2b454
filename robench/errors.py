"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class RobenchError(Exception):
    """Base class of every error caused by user input (paths, names, files, options)."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else self.__class__.__name__


class UnknownNameError(RobenchError, KeyError):
    """An unknown corruption, model, architecture, suite, … name."""


class InputError(RobenchError, ValueError):
    """A malformed file, an out-of-range option or an inconsistent combination."""


class MissingFileError(RobenchError, FileNotFoundError):
    """A path that does not exist."""


class CheckpointError(InputError):
    """A checkpoint that cannot be loaded safely or does not fit the architecture."""


class StoreLockedError(RobenchError, RuntimeError):
    """Another process is writing to the same result store."""


class DriftError(RobenchError):
    """A nightly metric moved beyond its tolerance from the published reference (exit code 1)."""
