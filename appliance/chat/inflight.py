"""One question at a time per patient, in the web process (issue 10.5: fair chat queueing).

`appliance llm` serves one generation at a time from a FIFO wait line of `[llm] max_queue`
places. Without this, one patient pressing "ask" five times would take five of those places
and push everyone who came after them back by five answers. Here a patient with a question
still being answered is refused at once with 429 and `Retry-After` (an RFC 7807 body, via the
app's DomainError handler), before any retrieval or model work.

Process-local on purpose: `appliance web` is one process (one uvicorn worker), and an answer
in flight is a thread of that process, so nothing outlives the process that could leave a
patient locked out. The hourly limit (`[chat] questions_per_hour`) stays in the database.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from appliance.errors import TooManyRequests

RETRY_AFTER_SECONDS = 5  # about one answer on the appliance's GPU
T = TypeVar("T")

_lock = threading.Lock()
_asking: set[uuid.UUID] = set()


def admit(patient_id: uuid.UUID) -> None:
    """Take the patient's one place, or refuse: their earlier question is still answered."""
    with _lock:
        if patient_id in _asking:
            raise TooManyRequests(
                "your previous question is still being answered; ask again when it is done",
                RETRY_AFTER_SECONDS,
            )
        _asking.add(patient_id)


def release(patient_id: uuid.UUID) -> None:
    with _lock:
        _asking.discard(patient_id)


@contextmanager
def one_question(patient_id: uuid.UUID) -> Iterator[None]:
    """The whole answer (not streamed) inside the patient's one place."""
    admit(patient_id)
    try:
        yield
    finally:
        release(patient_id)


def released_after(patient_id: uuid.UUID, events: Iterator[T]) -> Iterator[T]:
    """A streamed answer: the place is given back when the stream ends, fails or is dropped.
    A started generator runs its `finally` when closed or collected; one never started (the
    client left before the first byte) does not, so collection releases the place too."""
    stream = _released_after(patient_id, events)
    weakref.finalize(stream, release, patient_id)
    return stream


def _released_after(patient_id: uuid.UUID, events: Iterator[T]) -> Iterator[T]:
    try:
        yield from events
    finally:
        release(patient_id)
