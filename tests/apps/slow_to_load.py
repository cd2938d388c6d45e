"""The hooks service, loaded slowly by the one worker that claims $SLOW_TO_LOAD (the file is renamed away).

That worker writes ``loading <pid>`` to $HOOKS_LOG and then loads slowly, as
$SLOW_WHILE says: for 3 seconds while importing, before it builds the app (as
a module that imports a big library first would), or for 30 seconds once it
has built it.
"""

import os
import time
from pathlib import Path


def load_slowly_if_first(seconds: float) -> None:
    claim = Path(os.environ["SLOW_TO_LOAD"])
    try:
        claim.rename(claim.with_suffix(".taken"))
    except FileNotFoundError:
        return
    with open(os.environ["HOOKS_LOG"], "a") as log:
        log.write(f"loading {os.getpid()}\n")
    time.sleep(seconds)


if os.environ["SLOW_WHILE"] == "importing":
    load_slowly_if_first(3)

from tests.apps.hooks import app  # noqa: E402 - the slow part comes first in this case

if os.environ["SLOW_WHILE"] == "built":
    load_slowly_if_first(30)

__all__ = ["app"]
