"""Server-Sent Events framing, read back by a parser that follows the WHATWG spec as a browser does."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

import utilserve
from utilserve import HTTPError
from utilserve.events import HEADERS, HEARTBEAT, MEDIA_TYPE, Event, EventStream, encode, error_event


@dataclass
class Message:
    type: str
    data: str
    last_event_id: str


@dataclass
class Client:
    """The spec's "interpret the event stream", for one connection: what an EventSource would see."""

    messages: list[Message] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    last_event_id: str = ""

    def read(self, stream: bytes) -> list[Message]:
        text = stream.decode("utf-8").removeprefix("\ufeff")
        data, event_type = "", ""
        *lines, _unterminated = re.split(r"\r\n|\r|\n", text)
        for line in lines:
            if not line:
                if data:
                    self.messages.append(Message(event_type or "message", data.removesuffix("\n"), self.last_event_id))
                data, event_type = "", ""
                continue
            if line.startswith(":"):
                self.comments.append(line[1:])
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event_type = value
            elif name == "data":
                data += value + "\n"
            elif name == "id" and "\0" not in value:
                self.last_event_id = value
            elif name == "retry" and value.isascii() and value.isdigit():
                self.retry = int(value)
        return self.messages


def read(stream: bytes) -> list[Message]:
    return Client().read(stream)


class Point(BaseModel):
    x: int
    label: str


def test_a_str_is_one_message_of_data() -> None:
    assert encode("hello") == b"data: hello\n\n"
    assert read(encode("hello")) == [Message("message", "hello", "")]


@pytest.mark.parametrize(
    "data",
    ["a\nb", "a\r\nb", "a\rb", "a\n\r\nb\rc", "trailing\n", "\nleading", "\n", "a\n\nb", ""],
    ids=["LF", "CRLF", "CR", "mixed", "trailing", "leading", "only-newline", "blank-line", "empty"],
)
def test_multi_line_data_round_trips(data: str) -> None:
    normalised = re.sub(r"\r\n|\r", "\n", data)
    assert read(encode(data)) == [Message("message", normalised, "")]


def test_each_line_of_data_is_its_own_data_field() -> None:
    assert encode("a\r\nb\rc") == b"data: a\ndata: b\ndata: c\n\n"


def test_only_cr_and_lf_split_lines_and_a_leading_space_survives() -> None:
    data = " x\u2028y\x85z\x0bw: data: q"
    assert read(encode(data)) == [Message("message", data, "")]


def test_unicode_is_sent_as_utf8() -> None:
    assert encode("héllo ☃ 🎉") == "data: héllo ☃ 🎉\n\n".encode()
    assert read(encode(Event("ünï", event="ǝvent", id="ïd"))) == [Message("ǝvent", "ünï", "ïd")]


def test_a_dict_is_compact_json_data() -> None:
    assert encode({"i": 0, "s": "a\nb"}) == b'data: {"i":0,"s":"a\\nb"}\n\n'
    assert json.loads(read(encode({"i": 0, "s": "a\nb"}))[0].data) == {"i": 0, "s": "a\nb"}


def test_pydantic_models_and_other_json_are_json_data() -> None:
    assert encode(Point(x=1, label="é")) == 'data: {"x":1,"label":"é"}\n\n'.encode()
    assert read(encode(Event(Point(x=2, label="p"), event="point"))) == [Message("point", '{"x":2,"label":"p"}', "")]
    assert encode([1, None]) == b"data: [1,null]\n\n"
    assert encode(Event(None)) == b"data: null\n\n"


def test_the_fields_come_before_the_data() -> None:
    assert encode(Event("a\nb", event="tick", id="7", retry=2500)) == (
        b"event: tick\nid: 7\nretry: 2500\ndata: a\ndata: b\n\n"
    )


def test_id_event_and_retry_round_trip_and_the_last_event_id_persists() -> None:
    client = Client()
    stream = encode(Event("one", id="1", retry=3000)) + encode(Event("two", event="end")) + encode(Event("3", id=""))
    assert client.read(stream) == [
        Message("message", "one", "1"),
        Message("end", "two", "1"),
        Message("message", "3", ""),
    ]
    assert client.retry == 3000


def test_the_heartbeat_is_a_comment_and_no_message() -> None:
    client = Client()
    assert client.read(HEARTBEAT + encode("x") + HEARTBEAT) == [Message("message", "x", "")]
    assert client.comments == [" ping", " ping"]


def test_error_event_carries_the_error_contracts_body() -> None:
    body = HTTPError(500, "stream failed\nmid-way", detail={"at": 3}).body()
    [message] = read(encode("first") + error_event(body))[1:]
    assert message.type == "error"
    assert json.loads(message.data) == {
        "error": {"status": 500, "message": "stream failed\nmid-way", "detail": {"at": 3}}
    }
    assert error_event(b'{"error":{}}') == b'event: error\ndata: {"error":{}}\n\n'


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"event": "a\nb"}, "Event event must not contain a line break, got 'a\\nb'"),
        ({"event": "a\rb"}, "Event event must not contain a line break"),
        ({"id": "1\r\n"}, "Event id must not contain a line break"),
        ({"id": "1\x002"}, "Event id must not contain NUL"),
        ({"event": 3}, "Event event must be a str, got 3"),
        ({"retry": -1}, "Event retry must be a non-negative int of milliseconds, got -1"),
        ({"retry": 1.5}, "Event retry must be a non-negative int of milliseconds, got 1.5"),
        ({"retry": "10"}, "Event retry must be a non-negative int of milliseconds, got '10'"),
        ({"retry": True}, "Event retry must be a non-negative int of milliseconds, got True"),
    ],
)
def test_fields_that_would_break_the_framing_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Event("data", **fields)  # type: ignore[arg-type]  # wrong on purpose


def test_event_is_frozen() -> None:
    event = Event("x")
    with pytest.raises(AttributeError):
        event.event = "y"  # type: ignore[misc]  # frozen on purpose


def test_event_stream_holds_its_items_and_pings_every_15_seconds_by_default() -> None:
    items = iter(["a"])
    stream = EventStream(items)
    assert stream.items is items
    assert stream.ping_s == 15.0
    assert EventStream([], ping_s=1).ping_s == 1.0


def test_event_stream_takes_async_iterables() -> None:
    async def events() -> AsyncIterator[str]:
        yield "a"

    assert EventStream(events(), ping_s=0.5).ping_s == 0.5


@pytest.mark.parametrize("ping_s", [0, -1, 0.0, float("nan"), float("inf"), "15", None, True])
def test_event_stream_refuses_a_ping_that_is_not_a_positive_number(ping_s: object) -> None:
    message = f"EventStream ping_s must be a positive, finite number of seconds, got {ping_s!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        EventStream([], ping_s=ping_s)  # type: ignore[arg-type]  # wrong on purpose


@pytest.mark.parametrize("items", ["text", b"bytes", 3, None])
def test_event_stream_refuses_items_that_are_not_a_stream_of_events(items: object) -> None:
    with pytest.raises(TypeError, match="EventStream items must be an iterable or async iterable of events"):
        EventStream(items)  # type: ignore[arg-type]  # wrong on purpose


def test_the_constants_and_the_public_names() -> None:
    assert MEDIA_TYPE == "text/event-stream"
    assert dict(HEADERS) == {"cache-control": "no-cache", "x-accel-buffering": "no"}
    assert HEARTBEAT == b": ping\n\n"
    assert utilserve.Event is Event
    assert utilserve.EventStream is EventStream
    assert {"Event", "EventStream"} <= set(utilserve.__all__)


@given(st.text())
def test_any_text_data_round_trips(data: str) -> None:
    assert read(encode(data)) == [Message("message", re.sub(r"\r\n|\r", "\n", data), "")]


@given(
    st.lists(
        st.tuples(
            st.text(),
            st.none() | st.text().filter(lambda s: not re.search(r"[\r\n]", s)),
            st.none() | st.text().filter(lambda s: not re.search(r"[\r\n\0]", s)),
        ),
        max_size=5,
    )
)
def test_any_stream_of_events_round_trips(events: list[tuple[str, str | None, str | None]]) -> None:
    client = Client()
    stream = b"".join(encode(Event(data, event=type_, id=id_)) + HEARTBEAT for data, type_, id_ in events)
    last_event_id = ""
    expected = []
    for data, type_, id_ in events:
        last_event_id = id_ if id_ is not None else last_event_id
        expected.append(Message(type_ or "message", re.sub(r"\r\n|\r", "\n", data), last_event_id))
    assert client.read(stream) == expected
    assert client.comments == [" ping"] * len(events)
