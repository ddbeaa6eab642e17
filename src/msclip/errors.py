"""Exceptions that separate user mistakes (one clear line, non-zero exit) from bugs (tracebacks)."""


class MSClipError(Exception):
    """A problem the user can fix: wrong band count, missing file, unknown model, offline download."""


class SkippedImage(MSClipError):
    """An input that cannot be used (unreadable, wrong shape, all nodata); batches report and skip it."""


def describe_failure(name: str, exc: BaseException) -> str:
    """One line naming the input and what went wrong, whichever library raised it."""
    if isinstance(exc, MSClipError):
        message = str(exc)
        return message if name in message else f"{name}: {message}"
    return f"{name}: cannot read ({type(exc).__name__}: {exc})"


class BoaOffsetWarning(UserWarning):
    """An image's BOA offset was decided by its data, or its data contradicts its tags (see the outputs)."""
