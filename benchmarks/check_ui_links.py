"""Follow `pipeline ui`'s printed links in headless Chromium (issue #12): the trials sorted by
the CV score, the val_loss chart of every trial, the trials with their score columns.

Run it in a project after `make tune` (or any tuned study); it needs `chromium` on PATH
(`apt-get install -y chromium`) and skips with a message otherwise. Not in the unit tests:
a browser on a loaded machine is too slow and too variable for them.

    python benchmarks/check_ui_links.py              # in the project folder
    python benchmarks/check_ui_links.py --shots /tmp # also keep a PNG per link
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

WAIT = 120.0  # seconds for the MLflow server to answer
# what each link's rendered page must contain
EXPECT = {"trials by": ("trial-", "Sort: cv_"), "val_loss of every trial": ("val_loss",),
          "as columns": ("cv_", "_std")}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", type=Path, help="folder for one screenshot per link")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("skipped: no chromium on PATH (apt-get install -y chromium)")
        return 0
    ui = subprocess.Popen([sys.executable, "-m", "pipeline", "ui"], stdout=subprocess.PIPE,
                          text=True, start_new_session=True,
                          env={**os.environ, "PORT": os.environ.get("PORT", "")})
    try:
        links = read_links(ui)
        if not links:
            print("no study in this project's mlflow.db: run `make tune` first")
            return 1
        wait_for(links[0][1].split("/#")[0])
        failed = 0
        for i, (label, url) in enumerate(links):
            dom = render(browser, url, args.shots and args.shots / f"ui-link-{i}.png")
            wanted = next((v for k, v in EXPECT.items() if k in label), ())
            missing = [w for w in wanted if w not in dom]
            failed += bool(missing)
            print(f"{'FAIL' if missing else 'ok  '} {label} {url}"
                  + (f" (page lacks {missing})" if missing else ""))
        return 1 if failed else 0
    finally:
        os.killpg(ui.pid, signal.SIGINT)  # our own process group: pipeline ui and its server
        try:
            ui.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)


def read_links(ui: subprocess.Popen) -> list[tuple[str, str]]:
    """(label, url) pairs: each link is the line after its label."""
    links, label = [], ""
    assert ui.stdout is not None
    for line in ui.stdout:
        line = line.strip()
        if re.match(r"https?://\S+$", line):
            links.append((label, line))
        elif line.endswith(":"):
            label = line
        if len(links) and len(links) % 3 == 0 and not line.endswith(":"):
            break  # three links per study; the first study is enough
    return links


def wait_for(base: str) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            urllib.request.urlopen(base, timeout=5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def render(browser: str, url: str, shot: Path | None) -> str:
    base = [browser, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--virtual-time-budget=20000", "--window-size=2600,900"]
    if shot is not None:
        subprocess.run([*base, f"--screenshot={shot}", url], capture_output=True, timeout=180)
    done = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                          timeout=180)
    return done.stdout


if __name__ == "__main__":
    sys.exit(main())
