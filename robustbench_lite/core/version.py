"""The package version, recorded in every report and results-store row."""

__version__ = "0.1.0"
