"""Errors raised while reading or validating data."""


class DataError(ValueError):
    """Raised when input data or its configuration is invalid; the message names the file and the fix."""
