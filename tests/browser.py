"""Open a page in real headless Chromium and report what a user's browser saw, over the DevTools protocol on a
pipe (--remote-debugging-pipe: no port, nothing another test can reach): console errors, uncaught exceptions,
failed loads, each image's natural size, and a full-page screenshot."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-extensions", "--hide-scrollbars", "--remote-debugging-pipe"]  # fmt: skip


@dataclass
class PageVisit:
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed requests
    images: list[dict] = field(default_factory=list)  # {alt, complete, width, height} (natural sizes)
    title: str = ""
    text: str = ""


class _Pipe:
    def __init__(self, to_browser: int, from_browser: int):
        self.write_fd, self.read_fd = to_browser, from_browser
        self.buffer, self.next_id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self.receive(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def receive(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self.receive(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event


def visit(page: Path, screenshot: Path | None = None, width: int = 1280) -> PageVisit:
    """Load `page` (a local file) in headless Chromium; save a full-page PNG to `screenshot` when given."""
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()

    def child_fds() -> None:  # Chromium reads commands on fd 3 and writes replies to fd 4
        a, b = os.dup(to_browser_r), os.dup(from_browser_w)  # a >= 3, b > a: dup2 below cannot clobber them
        os.dup2(a, 3)
        os.dup2(b, 4)
        os.set_inheritable(3, True)  # dup2(3, 3) is a no-op that leaves close-on-exec set
        os.set_inheritable(4, True)

    with tempfile.TemporaryDirectory(prefix="batchvoc-chromium-") as profile:
        log = open(Path(profile) / "chromium.log", "w+b")  # noqa: SIM115 - closed below
        process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                   preexec_fn=child_fds, close_fds=False, stdout=log, stderr=log)  # fmt: skip
        os.close(to_browser_r)
        os.close(from_browser_w)
        pipe = _Pipe(to_browser_w, from_browser_r)
        try:
            return _visit(pipe, page, screenshot, width)
        except (OSError, RuntimeError, TimeoutError) as err:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"chromium (exit {process.poll()}): {err}; its log:\n{tail}") from err
        finally:
            log.close()
            try:
                pipe.send("Browser.close", timeout=10)
            except (RuntimeError, TimeoutError, OSError):
                pass
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()  # our own child, by its handle
                process.wait()
            os.close(to_browser_w)
            os.close(from_browser_r)


def _visit(pipe: _Pipe, page: Path, screenshot: Path | None, width: int) -> PageVisit:
    target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        pipe.send(f"{domain}.enable", session=session)
    pipe.send("Emulation.setDeviceMetricsOverride",
              {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)  # fmt: skip
    pipe.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
    pipe.wait_for("Page.loadEventFired")
    result = PageVisit()
    probe = ("JSON.stringify({title: document.title, text: document.body.innerText, images: Array.from("
             "document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth, "
             "height: i.naturalHeight}))})")  # fmt: skip
    value = pipe.send("Runtime.evaluate", {"expression": probe, "returnByValue": True}, session=session)
    found = json.loads(value["result"]["value"])
    result.title, result.text, result.images = found["title"], found["text"], found["images"]
    if screenshot is not None:
        size = pipe.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                         "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}},
                         session=session)  # fmt: skip
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    for event in pipe.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            result.errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in
                                                        params.get("args", [])))  # fmt: skip
        elif method == "Runtime.exceptionThrown":
            result.errors.append("exception: " + params["exceptionDetails"].get("text", ""))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            result.errors.append("log: " + params["entry"].get("text", ""))
        elif method == "Network.loadingFailed":
            result.errors.append("load failed: " + params.get("errorText", ""))
    return result
