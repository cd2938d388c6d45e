"""The JSON bodies of ``bench.overhead --payloads``: a pydantic model, and a valid body of about a given size."""

import json

from pydantic import BaseModel


class Entry(BaseModel):
    id: int
    name: str
    score: float
    tags: list[str]


class Payload(BaseModel):
    entries: list[Entry]


def body(size: int) -> bytes:
    """A JSON ``Payload`` of at least one entry and about ``size`` bytes (one entry more at most)."""
    entries: list[dict] = []
    length = len('{"entries":[]}')
    while not entries or length < size:
        entry = {
            "id": len(entries),
            "name": f"entry number {len(entries)}",
            "score": len(entries) / 7,
            "tags": ["a", "b"],
        }
        entries.append(entry)
        length += len(json.dumps(entry, separators=(",", ":"))) + 1
    return json.dumps({"entries": entries}, separators=(",", ":")).encode()
