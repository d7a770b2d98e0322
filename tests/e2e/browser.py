"""Headless Chromium for the real-browser test: the browser itself (installed by
``scripts/browser_deps.sh`` when missing), a static site on its own origin, and
what the browser's DevTools log says went over the wire."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE_DIR = Path(__file__).resolve().parent / "browser_page"
INSTALL_TIMEOUT_S = 900  # apt-get update and the install, on a slow mirror
# as root in a container: no sandbox; nothing from outside; a profile of its own
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@dataclass(frozen=True)
class Browser:
    chromium: str
    chromedriver: str


def ensure_browser() -> Browser:
    """Debian's Chromium and ChromeDriver, installed now if missing. Skips only when
    ``DOCS_BROWSER_TESTS=0``; a browser that cannot be had fails the test, with why."""
    if os.environ.get("DOCS_BROWSER_TESTS", "1") == "0":
        pytest.skip("DOCS_BROWSER_TESTS=0: the real-browser test is off")
    script = ROOT / "scripts" / "browser_deps.sh"
    try:
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script.name} did not finish in {INSTALL_TIMEOUT_S} s", pytrace=False)
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip().splitlines()[-15:]
        pytest.fail(
            f"no browser for the real-browser test: {script.name} exited {done.returncode}\n"
            + "\n".join(said)
            + "\n(DOCS_BROWSER_TESTS=0 skips the test where no browser can be installed)",
            pytrace=False,
        )
    return Browser(
        os.environ.get("DOCS_CHROMIUM", "/usr/bin/chromium"),
        os.environ.get("DOCS_CHROMEDRIVER", "/usr/bin/chromedriver"),
    )


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


@contextmanager
def static_site() -> Iterator[str]:
    """The test page on 127.0.0.1 on a port of its own (an origin of its own); its origin."""
    handler = functools.partial(_Quiet, directory=str(PAGE_DIR))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="static-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium(browser: Browser) -> Iterator[Any]:
    """A headless Chromium with a fresh profile, driven by selenium, with the DevTools
    network log on (``network_log``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="docs-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser.chromium
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        service = Service(executable_path=browser.chromedriver)
        driver = webdriver.Chrome(options=options, service=service)
        try:
            yield driver
        finally:
            driver.quit()


def network_log(driver: Any) -> list[dict[str, Any]]:
    """The DevTools ``Network.*`` events since the last call."""
    events = (json.loads(entry["message"])["message"] for entry in driver.get_log("performance"))
    return [event for event in events if event["method"].startswith("Network.")]


def run_page(driver: Any, origin: str, api: str, token: str, mode: str, timeout_s: float) -> Any:
    """Load the page in ``mode`` and return its ``window.results`` once it is done."""
    from urllib.parse import urlencode

    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{origin}/index.html#" + urlencode({"api": api, "token": token, "mode": mode}))
    WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(
        lambda d: d.execute_script("return window.results && window.results.done")
    )
    return driver.execute_script("return window.results")
