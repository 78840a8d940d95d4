"""Multipart form posts read as they stream, for the console's upload forms (a recording, a
scanned paper consent) in browsers without JavaScript.

Why not Litestar's form parsing: it spools files over 1 MiB to an unencrypted temporary file,
and patient files must never be in clear on disk. The body goes through the `multipart`
package's push parser (the one Litestar itself uses); the small text fields are kept, each up to
its length limit, and when the file part begins the caller opens an encrypting sink with every
field sent before the file in hand. The forms put their CSRF token before the file, so who is
signing and their token are checked before a single byte of the file is stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import anyio
from litestar import Request

FORM_OVERHEAD = 64 * 1024  # boundaries, part headers and the small fields around the file


class FileSink(Protocol):
    """Where the file's pieces go (encrypting as they arrive)."""

    def write(self, piece: bytes) -> None: ...


SinkT = TypeVar("SinkT", bound=FileSink)


class StreamedForm:
    def __init__(
        self,
        request: Request[Any, Any, Any],
        *,
        file_field: str,
        text_fields: Mapping[str, int],
        max_file_bytes: int,
        max_segments: int = 16,
    ) -> None:
        import multipart  # type: ignore[import-untyped]

        self._multipart = multipart
        self._body = request.stream()
        self._file_field = file_field
        self._text_fields = text_fields
        self._budget = max_file_bytes + FORM_OVERHEAD
        self._max_segments = max_segments
        kind, options = multipart.parse_options_header(request.headers.get("content-type", ""))
        self.boundary: str | None = (
            options.get("boundary") if kind == "multipart/form-data" else None
        )
        declared = request.headers.get("content-length", "")
        self.too_large = declared.isdigit() and int(declared) > self._budget
        self.fields: dict[str, list[str]] = {}

    def first(self, name: str) -> str:
        return (self.fields.get(name) or [""])[0]

    async def read(self, open_file: Callable[[str | None], Awaitable[SinkT]]) -> SinkT | None:
        """Read the whole form; `open_file(filename)` is awaited when the file part begins.
        Returns the sink, or None when the form had no file. A malformed or unfinished form
        raises the parser's `MultipartError` (see `incomplete`)."""
        multipart = self._multipart
        parser = multipart.PushMultipartParser(
            self.boundary, max_segment_count=self._max_segments, max_segment_size=self._budget
        )
        name = ""  # the current part's field name ("" between parts)
        value = bytearray()
        sink: SinkT | None = None
        async for chunk in self._body:
            for event in parser.parse(chunk):
                if isinstance(event, multipart.MultipartSegment):
                    name, value = event.name or "", bytearray()
                    if name == self._file_field and sink is None:
                        sink = await open_file(event.filename or None)
                elif event is None:  # the end of a part
                    if name in self._text_fields:
                        self.fields.setdefault(name, []).append(value.decode(errors="replace"))
                    name = ""
                elif (
                    name in self._text_fields and len(value) + len(event) <= self._text_fields[name]
                ):
                    value += event
                elif name == self._file_field and sink is not None:
                    await anyio.to_thread.run_sync(sink.write, bytes(event))
        for _event in parser.parse(b""):  # end of input: an unfinished form raises here
            pass
        return sink

    def incomplete(self, exc: BaseException) -> bool:
        return isinstance(exc, self._multipart.MultipartError)

    async def drain(self) -> None:
        """Read (and drop) what is left of a refused upload, up to the form's size: a browser
        that is still sending when the answer comes shows a connection error, not our page."""
        read = 0
        try:
            async for chunk in self._body:
                read += len(chunk)
                if read > self._budget:
                    return
        except Exception:  # the client went away: nothing left to answer
            return
