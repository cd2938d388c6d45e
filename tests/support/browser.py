"""A real headless Chromium for tests, and pages to open in it.

``browser`` (a fixture, made available in ``tests/conftest.py``) is a
selenium WebDriver on Debian's ``chromium`` and ``chromedriver``, which
reaches nothing but loopback. ``Browser.network()`` reads the DevTools
network events; when a test fails, its screenshot, page source, network
events and console go to ``$UTILSERVE_TEST_ARTIFACTS`` (default
``.test-artifacts/``). ``pages(...)`` serves static files from a port of
their own, to be an origin other than the service's. Without a browser the
tests skip, saying what is missing, except under CI (``CI=true``), where
they fail: a browser test that never runs proves nothing.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from .servers import HOST, ROOT

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = os.environ.get("UTILSERVE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("UTILSERVE_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("UTILSERVE_TEST_ARTIFACTS", ROOT / ".test-artifacts"))
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
"""Each phase's report of a test, kept by ``tests/conftest.py``: the fixture saves artifacts when one failed."""
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome"})
LOOPBACK_ONLY = (
    # Everything not on loopback goes to a proxy where nothing listens; loopback bypasses proxies.
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-sync",
    "--no-first-run",
)


class Browser:
    """A WebDriver and what it saw: the network events drained so far, kept for the artifacts."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver
        self.events: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []

    def network(self) -> list[dict[str, Any]]:
        """Every DevTools ``Network.*`` event so far, as ``{"method": ..., "params": ...}``."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method", "").startswith("Network."):
                self.events.append(message)
        return self.events

    def console(self) -> list[dict[str, Any]]:
        self.messages.extend(self.driver.get_log("browser"))
        return self.messages

    def requested_urls(self) -> list[str]:
        """Every URL the browser asked for so far."""
        return [e["params"]["request"]["url"] for e in self.network() if e["method"] == "Network.requestWillBeSent"]

    def console_errors(self) -> list[str]:
        """The console's errors so far: failed loads, script errors, refusals by a content security policy."""
        return [entry["message"] for entry in self.console() if entry["level"] == "SEVERE"]

    def screenshot(self, name: str) -> Path:
        """A PNG of the window, kept as ``<artifacts>/<name>.png`` whether the test passes or not."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def save(self, directory: Path) -> None:
        """Screenshot, page source, network events and console, for a test that failed."""
        directory.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(directory / "screenshot.png"))
        (directory / "page.html").write_text(self.driver.page_source)
        (directory / "network.json").write_text(json.dumps(self.network(), indent=1))
        (directory / "console.json").write_text(json.dumps(self.console(), indent=1))


def off_loopback(urls: list[str]) -> list[str]:
    """The URLs that would leave this machine: neither on a loopback host nor of a local scheme."""
    return [url for url in urls if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).hostname not in LOOPBACK]


def unavailable() -> str | None:
    """What is missing for a real browser, or None."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if not missing:
        return None
    return f"no real browser: {', '.join(missing)} missing (apt-get install chromium chromium-driver)"


def require() -> None:
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI runs the browser tests", pytrace=False)
    pytest.skip(reason)


def start() -> Browser:
    """A headless Chromium with its network log on, and no network but loopback."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    window = ("--window-size=1280,1600",)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        *window,
        *LOOPBACK_ONLY,
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return Browser(webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER)))


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    """A fresh headless Chromium for the test; its artifacts are saved when the test fails."""
    require()
    started = start()
    try:
        yield started
        reports = request.node.stash.get(REPORTS, {})
        if any(report.failed for report in reports.values()):
            started.save(ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid))
    finally:
        started.driver.quit()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def pages(files: Mapping[str, str], directory: Path) -> Iterator[str]:
    """Serve ``files`` (name -> text) from ``directory`` on a free loopback port; yields the base URL."""
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    handler = functools.partial(_Quiet, directory=str(directory))
    with http.server.ThreadingHTTPServer((HOST, 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://{HOST}:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join()
