"""Model failures become HTTP errors for exactly the items they concern; nothing hangs."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from pydantic import ConfigDict

from utilserve.errors import HTTPError
from utilserve.pool import Model, ModelHandle

from ..support.models.thread import Echo, EchoIn, EchoOut, echo
from ..support.pool import WAIT_S


class Picky(Echo):
    errors: ClassVar[dict[type[Exception], int | tuple[int, str]]] = {
        ValueError: 400,
        KeyError: (409, "x 13 is taken"),
    }

    def answer(self, batch: list[EchoIn]) -> list[Any]:
        if any(item.x == 13 for item in batch):
            raise KeyError(13)
        if any(item.x == 66 for item in batch):
            raise RuntimeError("boom at /secret/path")
        return [self.respond(item.x) for item in batch]

    def respond(self, x: int) -> Any:
        if x < 0:
            return ValueError(f"x must be >= 0, got {x}")
        return {
            99: ZeroDivisionError("secret internals"),
            98: {"x": "not a number"},
            97: HTTPError(418, "teapot"),
        }.get(x, {"x": x})


def one_batch(model: type[Echo], xs: list[int]) -> list[Any]:
    """Queue ``xs`` behind a blocked worker so they form one batch; return outcomes in order."""

    async def scenario(handle: ModelHandle) -> list[Any]:
        blocker = asyncio.create_task(handle.apredict({"x": 0, "block": True}))
        assert await asyncio.to_thread(model.started.wait, WAIT_S)
        calls = [asyncio.create_task(handle.apredict({"x": x})) for x in xs]
        await asyncio.sleep(0)
        model.gate.set()
        assert (await blocker).x == 0
        return await asyncio.gather(*calls, return_exceptions=True)

    with ModelHandle(model) as handle:
        results = asyncio.run(scenario(handle))
        assert handle.predict({"x": 1}).x == 1, "the pool keeps serving"
    assert sorted(model.batches[1]) == sorted(xs), "the items formed one batch"
    return results


def test_an_item_exception_fails_only_that_item_with_its_mapped_status() -> None:
    results = one_batch(echo(Picky), [1, -2, 3])
    assert [r.x for r in (results[0], results[2])] == [1, 3]
    assert isinstance(results[1], HTTPError)
    assert results[1].status == 400
    assert results[1].message == "model Picky: ValueError: x must be >= 0, got -2"


def test_a_batch_exception_fails_every_item_with_its_mapped_status_and_message() -> None:
    results = one_batch(echo(Picky), [1, 13, 2])
    assert all(isinstance(r, HTTPError) and r.status == 409 for r in results)
    assert {r.message for r in results} == {"x 13 is taken"}
    assert len({id(r) for r in results}) == 3, "each caller gets its own exception"


def test_an_unmapped_exception_is_a_500_naming_model_and_type_without_internals() -> None:
    results = one_batch(echo(Picky), [1, 66])
    for error in results:
        assert isinstance(error, HTTPError) and error.status == 500
        assert error.message == "model Picky failed: RuntimeError"
    [item_error] = one_batch(echo(Picky), [99])
    assert item_error.message == "model Picky failed: ZeroDivisionError"
    assert "secret" not in item_error.message and "Traceback" not in item_error.message


def test_an_http_error_from_the_model_passes_through() -> None:
    [error] = one_batch(echo(Picky), [97])
    assert isinstance(error, HTTPError) and (error.status, error.message) == (418, "teapot")


def test_an_invalid_output_fails_that_item_with_500() -> None:
    good, bad = one_batch(echo(Picky), [4, 98])
    assert good == EchoOut(x=4)
    assert isinstance(bad, HTTPError) and bad.status == 500
    assert "invalid EchoOut for item 1" in bad.message


class Miscounts(Echo):
    def answer(self, batch: list[EchoIn]) -> list[Any]:
        return super().answer(batch)[1:] if len(batch) > 1 else super().answer(batch)


def test_the_wrong_number_of_results_fails_the_whole_batch() -> None:
    results = one_batch(echo(Miscounts), [1, 2, 3])
    assert all(isinstance(r, HTTPError) and r.status == 500 for r in results)
    assert results[0].message == "model Miscounts: predict returned 2 results for a batch of 3"


def test_invalid_input_is_a_422_naming_each_field() -> None:
    with ModelHandle(echo()) as handle:
        with pytest.raises(HTTPError) as caught:
            handle.predict({"x": "seven", "block": "maybe"})
        with pytest.raises(HTTPError) as missing:
            handle.predict({})
    assert caught.value.status == 422
    assert caught.value.message == "invalid input for model Echo"
    assert [(d["field"], d["type"]) for d in caught.value.detail] == [
        ("x", "int_parsing"),
        ("block", "bool_parsing"),
    ]
    assert all(d["message"] for d in caught.value.detail)
    assert [d["field"] for d in missing.value.detail] == ["x"]


def test_a_strict_handle_refuses_what_a_lax_one_coerces() -> None:
    """Python callers hand Python values: strict mode wants their own types, as pydantic's strict Python mode does."""
    with ModelHandle(echo()) as lax, ModelHandle(echo(), strict=True) as strict:
        assert lax.predict({"x": "7", "block": 0}).x == 7
        with pytest.raises(HTTPError) as caught:
            strict.predict({"x": "7", "block": 0})
        assert strict.predict({"x": 7}).x == 7
        assert strict.predict(EchoOut(x=8)).x == 8
    assert caught.value.status == 422
    assert [(d["in"], d["field"], d["type"]) for d in caught.value.detail] == [
        ("body", "x", "int_type"),
        ("body", "block", "bool_type"),
    ]


class StrictEchoIn(EchoIn):
    model_config = ConfigDict(strict=True)


def test_a_lax_handle_leaves_an_input_that_declares_itself_strict_strict() -> None:
    with ModelHandle(echo(Input=StrictEchoIn), strict=False) as handle, pytest.raises(HTTPError) as caught:
        handle.predict({"x": "7"})
    assert [(d["field"], d["type"]) for d in caught.value.detail] == [("x", "int_type")]


def test_an_input_instance_or_another_pydantic_model_is_accepted() -> None:
    with ModelHandle(echo()) as handle:
        assert handle.predict(EchoIn(x=3)).x == 3
        assert handle.predict(EchoOut(x=4)).x == 4


def test_an_unknown_pool_kind_lists_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="unknown pool kind 'gpu'; supported: process, ray, thread"):
        ModelHandle(Echo, pool="gpu")


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"workers": 0}, ValueError, "workers must be an int >= 1, got 0"),
        ({"model_cls": dict}, TypeError, "needs a Model subclass"),
        ({"model_cls": Model}, TypeError, "Model implements neither predict"),
    ],
)
def test_handle_arguments_are_checked(kwargs: dict[str, Any], error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        ModelHandle(**{"model_cls": Echo, **kwargs})


def test_a_non_positive_timeout_is_rejected() -> None:
    with ModelHandle(echo()) as handle, pytest.raises(ValueError, match="timeout must be"):
        handle.predict({"x": 1}, timeout=0)
