"""The exceptions of the folder job, by who must act: the caller (:class:`JobError`) or nobody (:class:`PairError`)."""

from __future__ import annotations

__all__ = ["ConfigError", "JobError", "PairError", "UnsafePath"]


class JobError(Exception):
    """The job cannot start or continue (bad folders, settings that clash with OUT's run, unsafe paths)."""


class UnsafePath(JobError):
    """A write would leave the output folder or land on an input (overlapping folders, a symbolic link)."""


class ConfigError(JobError):
    """The config (or a replayed record's parameters) cannot be applied to an input; names the input."""


class PairError(Exception):
    """One pair cannot be used (unreadable file, over the pixel cap, shapes that differ): skipped and reported."""
