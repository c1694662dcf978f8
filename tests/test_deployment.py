"""The deployment files an operator starts from: systemd units that systemd accepts, and
a container build with a compose file that, where a container runtime is present, is
built, started and probed on /readyz."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
VENV_BIN = Path(sys.executable).parent


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """Rendered with this machine's paths (the units name /opt/helpdesk and
    /etc/helpdesk), every unit verifies with nothing to say."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (Debian: apt-get install systemd)")
    (tmp_path / "helpdesk.env").write_text((UNITS / "helpdesk.env.example").read_text())
    rendered = []
    for unit in sorted(UNITS.glob("*.service")):
        text = (unit.read_text().replace("/opt/helpdesk/bin", str(VENV_BIN))
                .replace("/etc/helpdesk/helpdesk.env", str(tmp_path / "helpdesk.env"))
                .replace("/var/lib/helpdesk", str(tmp_path)))  # fmt: skip
        name = unit.name.replace("@.service", "@1.service")  # a template needs an instance
        (tmp_path / name).write_text(text)
        rendered.append(str(tmp_path / name))
    assert {Path(r).name for r in rendered} == {
        "helpdesk-web.service", "helpdesk-worker@1.service", "helpdesk-scheduler.service"
    }  # fmt: skip
    verified = subprocess.run(["systemd-analyze", "verify", "--man=no", *rendered],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr


def test_the_compose_file_runs_the_commands_the_service_has() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "scheduler"} <= set(services)
    helpdesk = str(VENV_BIN / "helpdesk")
    for name in ("migrate", "worker", "scheduler"):
        command = services[name]["command"]
        assert command[0] == "helpdesk", name
        shown = subprocess.run([helpdesk, *command[1:], "--help"], capture_output=True,
                               text=True, timeout=60)  # fmt: skip
        assert shown.returncode == 0, (name, shown.stderr)
    assert "helpdesk.wsgi:app" in (ROOT / "Dockerfile").read_text()


def _container_runtime() -> list[str] | None:
    for compose in (["docker", "compose"], ["podman", "compose"], ["docker-compose"]):
        if shutil.which(compose[0]) is None:
            continue
        ready = subprocess.run([*compose, "version"], capture_output=True, timeout=30)
        engine = subprocess.run([compose[0], "info"], capture_output=True, timeout=30)
        if ready.returncode == 0 and engine.returncode == 0:
            return compose
    return None


def test_the_container_stack_comes_up_ready() -> None:
    compose = _container_runtime()
    if compose is None:
        pytest.skip("no container runtime with compose here: the stack is built and "
                    "probed only where one is (as the issue asks)")  # fmt: skip
    project = ["-p", f"helpdesk-test-{int(time.time())}", "-f", str(ROOT / "compose.yaml")]
    env = {"SECRET_KEY": "compose-test-secret-key-compose-test", "PIN_PEPPER": "pepper",
           "PATH": "/usr/local/bin:/usr/bin:/bin"}  # fmt: skip
    try:
        subprocess.run([*compose, *project, "up", "--build", "--detach"], cwd=ROOT, env=env,
                       check=True, timeout=1800)  # fmt: skip
        deadline = time.monotonic() + 180
        while True:
            try:
                answer = requests.get("http://127.0.0.1:8000/readyz", timeout=5)
                if answer.status_code == 200 and not answer.json()["degraded"]:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the stack did not become ready"
            time.sleep(2)
    finally:
        subprocess.run([*compose, *project, "down", "--volumes"], cwd=ROOT, env=env,
                       timeout=300)  # fmt: skip
