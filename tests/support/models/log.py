"""What the pool test models share: their item types and a log of what they saw in $MODEL_LOG."""

import json
import os
from typing import Any

from pydantic import BaseModel


def record(**event: Any) -> None:
    with open(os.environ["MODEL_LOG"], "a") as log:
        log.write(json.dumps({"pid": os.getpid(), **event}) + "\n")


class Number(BaseModel):
    x: int


class Doubled(BaseModel):
    y: int
