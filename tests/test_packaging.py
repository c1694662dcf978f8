"""The wheel, as an operator installs it: built from this checkout, installed into a
fresh virtualenv outside it, then `helpdesk db upgrade`, `helpdesk demo` and
`helpdesk run` from an empty directory, serving a styled page."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests

from .smtp import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_installed_elsewhere_migrates_loads_the_demo_and_serves_styled_pages(
    tmp_path: Path,
) -> None:
    # Built from a copy, so the build's own folders (build/, *.egg-info) stay out of the
    # checkout; the copy holds what `make install` put in static/govuk.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "instance", "build", "dist", "*.egg-info",
        "__pycache__", ".*_cache", "artifacts", "out"))  # fmt: skip
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "dist"),
         str(source)], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    build_warnings = [line for line in (built.stdout + built.stderr).splitlines()
                      if "Warning" in line and "Location" not in line]  # fmt: skip
    assert not build_warnings, build_warnings
    (wheel,) = (tmp_path / "dist").glob("portal_helpdesk-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
                               capture_output=True, text=True, timeout=900)  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]

    site = tmp_path / "site"  # an empty directory, far from the checkout
    site.mkdir()
    helpdesk = str(venv / "bin" / "helpdesk")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    for command in (["db", "upgrade"], ["demo"]):
        done = subprocess.run([helpdesk, *command], cwd=site, env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    assert (site / "instance" / "helpdesk.sqlite3").is_file()  # the instance is here
    served = subprocess.run(  # the production command in the README loads from the package
        [str(venv / "bin" / "gunicorn"), "--check-config", "-c", "python:helpdesk.serving",
         "helpdesk.wsgi:app"], cwd=site, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert served.returncode == 0, served.stderr[-3000:]
    port = free_port()
    server = subprocess.Popen([helpdesk, "run", "--port", str(port)], cwd=site, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = requests.get(f"{base}/sign-in", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.3)
        assert page.status_code == 200 and "<h1" in page.text
        sheets = re.findall(r'<link[^>]+href="([^"]+\.css)"', page.text)
        assert sheets, "the page links its stylesheets"
        for sheet in sheets:
            styled = requests.get(base + sheet, timeout=5)
            assert styled.status_code == 200 and styled.headers["Content-Type"].startswith(
                "text/css"
            ), sheet
        font = re.search(r"/assets/fonts/[\w.-]+\.woff2", requests.get(
            base + next(s for s in sheets if "govuk" in s), timeout=5).text)  # fmt: skip
        assert font and requests.get(base + font.group(0), timeout=5).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=20)
