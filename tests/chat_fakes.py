"""A deterministic `ChatModel` for domain tests: it replies with a scripted text in word pieces,
records every conversation it was given, and can be told to fail mid-answer or to be slow."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from appliance.chat.llm import ChatMessage, GenerationOptions, ModelUnavailable


@dataclass
class FakeChatModel:
    reply: str = "Keep walking every morning and write down how you slept."
    model_id: str = "fake-chat"
    # Raise `failure` after this many pieces (None: never).
    fail_after: int | None = None
    failure: Exception = field(
        default_factory=lambda: ModelUnavailable("the fake model stopped mid-answer")
    )
    # Seconds to wait before each piece, like a model generating tokens.
    delay: float = 0.0
    calls: list[list[ChatMessage]] = field(default_factory=list)
    options: list[GenerationOptions] = field(default_factory=list)
    # Pieces handed out, and whether the last stream was closed before its end.
    produced: int = 0
    closed_early: bool = False
    # Set while a stream is being generated (tests wait on it to know the slot is held).
    generating: threading.Event = field(default_factory=threading.Event)

    def pieces(self) -> list[str]:
        """The reply split into words, each but the first with its leading space."""
        words = self.reply.split(" ")
        return [words[0], *(f" {word}" for word in words[1:])]

    def stream(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[str]:
        self.calls.append(list(messages))
        self.options.append(options)
        self.generating.set()
        self.closed_early = False
        try:
            for index, piece in enumerate(self.pieces()[: options.max_tokens]):
                if self.fail_after is not None and index >= self.fail_after:
                    raise self.failure
                if self.delay:
                    time.sleep(self.delay)
                self.produced += 1
                yield piece
        except GeneratorExit:
            self.closed_early = True
            raise
        finally:
            self.generating.clear()
