"""A Model subclass is checked when it is defined, with messages that say what to fix."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from utilserve.pool import Model


class In(BaseModel):
    x: float


class Out(BaseModel):
    y: float


def define(**attrs: Any) -> type[Model]:
    body: dict[str, Any] = {"Input": In, "Output": Out, "predict": lambda self, batch: batch}
    return type("Bad", (Model,), {**body, **attrs})


def test_a_valid_model_keeps_its_settings_and_defaults() -> None:
    model = define(max_batch_size=32, max_wait_ms=0, errors={ValueError: (400, "bad x")})
    assert (model.max_batch_size, model.max_wait_ms, model.max_queue, model.timeout_s) == (
        32,
        0,
        1024,
        30.0,
    )


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        (
            {"Input": dict},
            r"Bad.Input must be a pydantic BaseModel subclass .* got <class 'dict'> \(type\)",
        ),
        ({"Output": None}, "Bad.Output must be a pydantic BaseModel subclass .* nothing"),
        ({"max_batch_size": 0}, r"Bad.max_batch_size must be an int > 0, got 0 \(int\)"),
        ({"max_batch_size": 8.0}, r"Bad.max_batch_size must be an int > 0, got 8.0 \(float\)"),
        ({"max_queue": True}, r"Bad.max_queue must be an int > 0, got True \(bool\)"),
        ({"max_wait_ms": "5"}, r"Bad.max_wait_ms must be a number >= 0, got '5' \(str\)"),
        ({"max_wait_ms": -1}, r"Bad.max_wait_ms must be a number >= 0, got -1 \(int\)"),
        ({"timeout_s": 0}, r"Bad.timeout_s must be a number > 0, got 0 \(int\)"),
        ({"errors": [ValueError]}, r"Bad.errors must be a dict of exception type -> status"),
        (
            {"errors": {"ValueError": 400}},
            r"Bad.errors keys must be Exception subclasses, got 'ValueError'",
        ),
        ({"errors": {ValueError: 200}}, r"Bad.errors\[ValueError\] must be an HTTP status 400-599"),
        ({"errors": {ValueError: (400, 1)}}, r"Bad.errors\[ValueError\] must be .* got \(400, 1\)"),
        ({"strict": "yes"}, r"Bad.strict must be True, False or None \(the service's\), got 'yes' \(str\)"),
        ({"strict": 1}, r"Bad.strict must be True, False or None \(the service's\), got 1 \(int\)"),
    ],
)
def test_a_bad_setting_fails_at_definition(attrs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        define(**attrs)


def test_missing_input_is_named() -> None:
    with pytest.raises(
        TypeError,
        match=r"Bad.Input must be .*\(declare `class Input\(BaseModel\): ...` inside the model\), nothing",
    ):
        type("Bad", (Model,), {"Output": Out, "predict": lambda self, batch: batch})


def test_a_shared_base_without_predict_needs_no_schemas() -> None:
    class Base(Model):
        max_batch_size = 16

        def setup(self) -> None:
            self.factor = 2

    class Concrete(Base):
        Input = In
        Output = Out

        def predict(self, batch: list[In]) -> list[Out]:
            return [Out(y=item.x * self.factor) for item in batch]

    assert Concrete.max_batch_size == 16
    concrete = Concrete()
    concrete.setup()
    assert concrete.predict([In(x=2)]) == [Out(y=4)]
