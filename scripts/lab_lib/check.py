"""scripts/lab --check DIR: open DIR/report.html in headless Chromium (Debian's `chromium`,
installed with apt-get on first use), save DIR/report.png, and fail on a console error, a page
exception, a failed load, or a chart (svg.lab-chart) none of whose marks has a visible size.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: commands on
fd 3, replies on fd 4, each message NUL-terminated JSON), which needs only the standard library."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CHART_MARKS = """Array.from(document.querySelectorAll('svg.lab-chart')).map(s =>
  Array.from(s.querySelectorAll('.mark')).filter(e => {
    const b = e.getBBox();
    return e.tagName === 'polyline' ? b.width + b.height > 0 : b.width > 0 && b.height > 0;
  }).length)"""


def find_chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    print("lab --check: installing Debian's chromium (apt-get) ...", file=sys.stderr)
    subprocess.run(["apt-get", "update"], check=False, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], check=True,
                   stdout=subprocess.DEVNULL)
    return shutil.which("chromium")


class DevTools:
    def __init__(self, binary, profile):
        cmd_r, self.cmd_w = os.pipe()
        self.out_r, out_w = os.pipe()

        def fds():
            # Copies first: a pipe end may itself be fd 3 or 4 (and dup2 onto itself keeps close-on-exec).
            a, b = os.dup(cmd_r), os.dup(out_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [binary, "--headless", "--remote-debugging-pipe", "--disable-gpu", "--no-first-run",
                f"--user-data-dir={profile}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")
        self.proc = subprocess.Popen(args, preexec_fn=fds, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(out_w)
        self.buf, self.next_id, self.events = b"", 0, []

    def read_message(self, deadline):
        while b"\0" not in self.buf:
            if time.time() > deadline:
                raise SystemExit("lab --check: Chromium did not answer in time")
            chunk = os.read(self.out_r, 65536)
            if not chunk:
                raise SystemExit("lab --check: Chromium closed the DevTools pipe")
            self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method, params=None, session=None, timeout=60):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        except BrokenPipeError:
            raise SystemExit(f"lab --check: Chromium exited (status {self.proc.poll()})")
        deadline = time.time() + timeout
        while True:
            reply = self.read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise SystemExit(f"lab --check: {method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, name, timeout=60):
        deadline = time.time() + timeout
        while not any(e.get("method") == name for e in self.events):
            self.events.append(self.read_message(deadline))

    def close(self):
        try:
            if self.proc.poll() is None:
                self.call("Browser.close", timeout=10)
        except SystemExit:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def problems(events):
    found = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            found.append("console error: " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            found.append("exception: " + p.get("exceptionDetails", {}).get("text", "?"))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            found.append("console error: " + p["entry"].get("text", "?"))
    return found


def check(directory):
    page = os.path.abspath(os.path.join(directory, "report.html"))
    if not os.path.isfile(page):
        print(f"lab --check: no {page}", file=sys.stderr)
        return 1
    binary = find_chromium()
    with tempfile.TemporaryDirectory() as profile:
        dt = DevTools(binary, profile)
        try:
            target = dt.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = dt.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                dt.call(domain + ".enable", session=session)
            nav = dt.call("Page.navigate", {"url": "file://" + page}, session=session)
            dt.wait_event("Page.loadEventFired")
            found = [f"load failed: {nav['errorText']}"] if nav.get("errorText") else []
            marks = dt.call("Runtime.evaluate", {"expression": CHART_MARKS, "returnByValue": True},
                            session=session)["result"].get("value") or []
            size = dt.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
            shot = dt.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                      "clip": {"x": 0, "y": 0, "width": size["width"],
                                                               "height": size["height"], "scale": 1}},
                           session=session)
            found += problems(dt.events)
        finally:
            dt.close()
    png = os.path.join(directory, "report.png")
    with open(png, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    if not marks:
        found.append("the page has no chart (svg.lab-chart)")
    found += [f"chart {i + 1} drew nothing" for i, n in enumerate(marks) if n == 0]
    for f in found:
        print(f"lab --check: {f}", file=sys.stderr)
    print(f"lab --check: {len(marks)} charts, {sum(marks)} marks drawn; screenshot {png}"
          + ("" if not found else f"; {len(found)} problem(s)"))
    return 1 if found else 0
