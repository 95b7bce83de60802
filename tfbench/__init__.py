"""tfbench: generate and evaluate audio-driven talking-face videos with reference-compatible metrics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tfbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
