"""`epochstream api` serves the app with uvicorn; its flags override the environment."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from tests.conftest import ROOT, free_port, settings_env


def test_flags_override_environment(settings, tmp_path):
    port = free_port()
    env = settings_env(settings)
    env["EPOCHSTREAM_API_PORT"] = "1"  # a flag must win over this
    proc = subprocess.Popen([sys.executable, "-c", "from epochstream.cli import main; main()", "api",
                             "--port", str(port), "--data-dir", str(tmp_path / "elsewhere"), "--token", "t0k"],
                            env=env, cwd=ROOT, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                health = httpx.get(f"{base}/healthz", timeout=0.5)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.1)
        assert health.json()["data_dir"] == str(tmp_path / "elsewhere")
        assert httpx.get(f"{base}/runs").status_code == 401
        assert httpx.get(f"{base}/runs", headers={"Authorization": "Bearer t0k"}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
