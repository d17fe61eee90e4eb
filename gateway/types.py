"""The gateway's vocabulary: small types every layer shares, defined once (in the spirit of Starlette's).

``Endpoint`` is what a client called, ``Mode`` what a deployment serves; ``Usage`` the tokens a provider
reports for one answer; ``Batches`` a stream's events as they arrive, those that came together in one list.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Final, Literal

Endpoint = Literal["chat", "embeddings"]
Mode = Literal["chat", "embedding"]
Batches = AsyncGenerator[list[bytes], None]


def mode_of(endpoint: Endpoint) -> Mode:
    """>>> mode_of("embeddings")
    'embedding'
    """
    return "chat" if endpoint == "chat" else "embedding"


@dataclass(init=False, unsafe_hash=True)
class Usage:
    """Tokens of one answer, as the provider counted them."""

    prompt: Final[int]
    completion: Final[int]

    def __init__(self, prompt: int, completion: int) -> None:
        self.prompt = prompt
        self.completion = completion

    @property
    def total(self) -> int:
        return self.prompt + self.completion
