"""Headless Chromium driven over the DevTools protocol, for tests that look at a page as a person would.

Debian's chromium talks the protocol over a pipe (--remote-debugging-pipe: commands on
fd 3, replies on fd 4, each JSON message ended by a NUL byte), so no driver binary,
no websocket library and no browser download is needed: the standard library does.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def chromium() -> str:
    """The chromium binary; without one the test skips (fails on CI, where setup installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed (apt-get install -y chromium; scripts/setup.sh --tests does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


class Browser:
    """One headless page: open a URL, wait for what it shows, read its text, take screenshots."""

    def __init__(self, width: int = 1600, height: int = 1000):
        self._profile = tempfile.mkdtemp(prefix="chromium-")
        # Our ends of the two pipes; the browser's ends are moved to fds 10 and up first, so that putting
        # them on 3 and 4 (in the bash that starts chromium; dash takes single-digit fds only) cannot overwrite
        # one with the other.
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        low = (to_browser_r, from_browser_w)
        to_browser_r, from_browser_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in low)
        for fd in low:
            os.close(fd)
        args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-pipe",
            "--no-first-run",
            f"--user-data-dir={self._profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        redirect = f"3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-"
        self._process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" {redirect}', chromium(), *args],
            pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer, self._next_id = b"", 0
        page = next(t for t in self._call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self._session = self._call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self._call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _call(self, method: str, session: bool = False, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:  # events arrive in between: skip them
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        self._call("Page.navigate", session=True, url=url)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        result = self._call(
            "Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def text(self) -> str:
        """What the page shows as text (innerText: hidden elements left out)."""
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for(self, expression: str, timeout: float = 60, what: str = "") -> object:
        """Poll a JavaScript expression until it is truthy; fail with the page's text if it never is."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError:  # the page is still loading (no body yet, or a context being replaced)
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what or expression}: not seen within {timeout:.0f} s; the page shows:\n{self.text()[:3000]}"
                )
            time.sleep(0.5)

    def wait_for_text(self, needle: str, timeout: float = 60) -> None:
        self.wait_for(
            f"document.body && document.body.innerText.includes({json.dumps(needle)})", timeout, f"the text {needle!r}"
        )

    # key -> (DOM code, Windows virtual key code) for the keys the tests press that are not one character
    SPECIAL_KEYS = {
        "Enter": ("Enter", 13),
        "Backspace": ("Backspace", 8),
        "ArrowLeft": ("ArrowLeft", 37),
        "ArrowUp": ("ArrowUp", 38),
        "ArrowRight": ("ArrowRight", 39),
        "ArrowDown": ("ArrowDown", 40),
    }

    def press(self, key: str, ctrl: bool = False) -> None:
        """A real key press (down and up) as the keyboard sends it: "3", "s", "Enter", "ArrowRight"."""
        if key in self.SPECIAL_KEYS:
            code, vk = self.SPECIAL_KEYS[key]
            text = "\r" if key == "Enter" else ""
        else:
            code = f"Digit{key}" if key.isdigit() else f"Key{key.upper()}"
            vk, text = ord(key.upper()), key
        event = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "modifiers": 2 if ctrl else 0}
        self._call(
            "Input.dispatchKeyEvent",
            session=True,
            type="keyDown",
            **event,
            **({"text": text} if text and not ctrl else {}),
        )
        self._call("Input.dispatchKeyEvent", session=True, type="keyUp", **event)

    def click(self, selector: str) -> None:
        """A mouse click at the middle of the element `selector` (scrolled into view first)."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self._call(
                "Input.dispatchMouseEvent", session=True, type=kind, x=box[0], y=box[1], button="left", clickCount=1
            )

    def reload(self) -> None:
        """Reload, and return once the new document has loaded: Page.reload answers before it has, and a wait
        for something the old document also showed could pass on the old one (a failed CI run did)."""
        self.evaluate("window.alstudyBeforeReload = true")
        self._call("Page.reload", session=True)
        self.wait_for(
            "window.alstudyBeforeReload === undefined && document.readyState === 'complete'", what="the reloaded page"
        )

    def allow_downloads(self, folder: Path) -> None:
        """Files the page downloads are saved into `folder`, under the name the page gives them."""
        folder.mkdir(parents=True, exist_ok=True)
        self._call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(folder))

    def screenshot(self, path: Path) -> Path:
        data = self._call("Page.captureScreenshot", session=True, format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self._call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
