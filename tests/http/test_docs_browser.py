"""The docs page in a real headless Chromium: the operations listed, one tried with its response shown, and
no request sent anywhere but 127.0.0.1 (read from the browser's own network log)."""

from __future__ import annotations

from collections.abc import Callable

from ..support.browser import Browser, off_loopback
from ..support.cells import cell_named
from ..support.servers import Server, serve

APP = "tests.apps.documented:app"
OPERATIONS = {
    "/api/hello": "Say hello to someone.",
    "/api/items/{item_id}": "Fetch one item by id.",
    "/api/items": "Create an item.",
}
WAIT_S = 30


def test_the_docs_page_lists_the_operations_and_tries_one_out(
    browser: Browser, running: Callable[[Server], Server]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.wait import WebDriverWait

    server = running(serve(cell_named("starlette@uvicorn"), APP))
    page = browser.driver
    wait = WebDriverWait(page, WAIT_S)
    page.get(server.url + "/api/docs")

    wait.until(lambda _: len(page.find_elements(By.CSS_SELECTOR, ".opblock")) == len(OPERATIONS))
    blocks = {
        block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"): block
        for block in page.find_elements(By.CSS_SELECTOR, ".opblock")
    }
    listed = {
        path: block.find_element(By.CSS_SELECTOR, ".opblock-summary-description").text for path, block in blocks.items()
    }
    assert listed == OPERATIONS

    hello = blocks["/api/hello"]
    hello.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    wait.until(shown.element_to_be_clickable((By.CSS_SELECTOR, ".try-out__btn"))).click()
    name = wait.until(shown.element_to_be_clickable((By.CSS_SELECTOR, ".parameters input[placeholder='name']")))
    name.clear()
    name.send_keys("browser")
    hello.find_element(By.CSS_SELECTOR, "button.execute").click()

    body = wait.until(shown.visibility_of_element_located((By.CSS_SELECTOR, ".live-responses-table .microlight")))
    wait.until(lambda _: "hello browser" in body.text)
    status = hello.find_element(By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status").text
    assert status.startswith("200"), status
    kept = browser.screenshot("docs-page")
    assert kept.stat().st_size > 0

    urls = browser.requested_urls()
    assert server.url + "/api/openapi.json" in urls and server.url + "/api/hello?name=browser" in urls, urls
    assert off_loopback(urls) == [], urls
    assert browser.console_errors() == []
