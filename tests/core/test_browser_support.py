"""The headless-browser support: a missing Chromium fails under CI and skips elsewhere; what counts as leaving."""

from __future__ import annotations

import pytest

from ..support import browser


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_chromium_fails_under_ci_and_skips_elsewhere(
    ci: str, outcome: type[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="/nonexistent/chromium"):
        browser.require()


def test_only_loopback_hosts_and_local_schemes_stay_on_the_machine() -> None:
    urls = [
        "http://127.0.0.1:8000/api/docs",
        "http://localhost:1/x",
        "http://[::1]:2/y",
        "data:image/svg+xml;base64,AAAA",
        "blob:http://127.0.0.1:8000/1234",
        "chrome://resources/x.js",
        "https://cdn.jsdelivr.net/npm/swagger-ui-dist/swagger-ui.css",
        "http://127.0.0.2/z",
        "http://10.0.0.1/z",
    ]
    assert browser.off_loopback(urls) == urls[-3:]
