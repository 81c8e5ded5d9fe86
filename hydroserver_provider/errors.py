"""Errors of the ingestion core.

Every error says what was expected, what was found and where, so that a hydrologist reading an
Airflow task log can fix the definition or the source without reading our code.
"""

from __future__ import annotations

from collections.abc import Iterable


class HydroServerProviderError(Exception):
    """Base class of every error this package raises on purpose."""


class DefinitionError(HydroServerProviderError, ValueError):
    """A data connection or task definition is invalid.

    ``location`` names the file and/or definition (``"stations.yaml: task 'Station 42'"``),
    ``field`` the offending key, ``expected`` and ``found`` the two sides of the mismatch.
    """

    def __init__(
        self,
        message: str,
        *,
        location: str | None = None,
        field: str | None = None,
        expected: str | None = None,
        found: object = None,
    ) -> None:
        self.location = location
        self.field = field
        self.expected = expected
        self.found = found
        parts = [p for p in (location, f"field '{field}'" if field else None) if p]
        text = f"{': '.join(parts)}: {message}" if parts else message
        if expected is not None:
            text += f" (expected {expected}, found {found!r})"
        super().__init__(text)


class SourceError(HydroServerProviderError):
    """The data source could not be fetched or did not answer with usable content."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(message)


class ParseError(HydroServerProviderError, ValueError):
    """The fetched payload could not be read as the data connection describes."""


class HydroServerAPIError(HydroServerProviderError):
    """HydroServer answered with an error; carries the HTTP status and HydroServer's ``detail``."""

    def __init__(self, method: str, path: str, status: int | None, detail: object, *,
                 after_transport_error: bool = False) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        # an earlier try of this request lost its connection: the server may have carried it out
        self.after_transport_error = after_transport_error
        where = f"{method} {path}"
        super().__init__(
            f"HydroServer answered {status} to {where}: {detail}"
            if status is not None
            else f"HydroServer could not be reached for {where}: {detail}"
        )


class IngestionFailed(HydroServerProviderError):
    """A run finished but some datastreams failed; ``summary`` holds the whole run result."""

    def __init__(self, message: str, summary: dict) -> None:
        self.summary = summary
        super().__init__(message)


class DefinitionErrors(DefinitionError):
    """Several definition problems reported together.

    ``errors`` holds one ``DefinitionError`` per problem; ``str()`` lists every one of them, so a
    single log line shows all that must be fixed in a file.
    """

    def __init__(self, errors: Iterable[DefinitionError]) -> None:
        self.errors: tuple[DefinitionError, ...] = tuple(errors)
        count = len(self.errors)
        lines = "\n".join(f"  - {error}" for error in self.errors)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in definitions:\n{lines}")

    def __iter__(self):
        return iter(self.errors)

    def __len__(self) -> int:
        return len(self.errors)
