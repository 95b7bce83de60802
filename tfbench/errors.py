"""The one exception family that tfbench raises for bad input; the CLI prints it as a single red line."""


class TfbenchError(Exception):
    """A problem the user can fix (a missing file, a bad option, an unreadable video); the message says so."""


class MediaError(TfbenchError):
    """A file that is missing, empty, truncated, not a video, or lacks a stream the caller needs."""


class WeightsError(TfbenchError):
    """A weight file that is unknown, missing, or whose hash does not match its registry entry."""
