"""Failures the CLI turns into a short message, a hint and an exit code (never a traceback)."""

from __future__ import annotations

#: Exit code for a bad setting or a bad command line.
EXIT_USAGE = 2
#: Exit code for any other failure the user can act on.
EXIT_FAILURE = 1


class ModelServiceError(Exception):
    """A failure the user can act on. ``hint`` says what to do next."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  -> {self.hint}"


class SettingsError(ModelServiceError):
    """A bad value in the environment; the service does not start."""

    exit_code = EXIT_USAGE


class DatasetError(ModelServiceError):
    """The training data cannot be read, fetched, verified or parsed."""


class ArtifactError(ModelServiceError):
    """The model artifact is missing, unreadable or does not match its checksum."""
