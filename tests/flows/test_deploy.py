"""`hi3dgen deploy` against a real local Prefect server: the deployment is served, a run triggered
through the API completes."""

import socket
import subprocess
import time

import pytest

from tests import project

pytestmark = pytest.mark.slow


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deploy_and_trigger(tmp_path):
    root = project.make(
        tmp_path, {"synthesize": {"count": 2}, "render": {"views": 4, "resolution": 32}, "executor": {"kind": "inline"}}
    )  # Ray: the other end-to-end tests
    port = _free_port()
    env = project.env(root)
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    (root / ".hi3dgen" / "prefect").mkdir(parents=True)
    server_log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    served = None
    try:
        probe = [
            str(project.REPO / ".venv" / "bin" / "python"),
            "-c",
            "import httpx,sys; sys.exit(httpx.get(sys.argv[1]).status_code != 200)",
            f"http://127.0.0.1:{port}/api/health",
        ]
        deadline = time.monotonic() + 120
        while subprocess.run(probe, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(1)
        served = subprocess.Popen(
            ["hi3dgen", "deploy", "--cron", "0 3 * * *", "--name", "t"],
            cwd=root,
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        trigger = (
            "import sys\n"
            "from prefect.deployments import run_deployment\n"
            "from prefect.client.orchestration import get_client\n"
            "import asyncio, time\n"
            "async def deployment():\n"
            "    async with get_client() as c:\n"
            "        for _ in range(120):\n"
            "            try:\n"
            "                d = await c.read_deployment_by_name('dataset_refresh/t')\n"
            "                return d\n"
            "            except Exception:\n"
            "                await asyncio.sleep(1)\n"
            "d = asyncio.run(deployment())\n"
            "print('schedule', d.schedules[0].schedule.cron, flush=True)\n"
            "run = run_deployment('dataset_refresh/t', parameters={'push_at_end': False}, timeout=600)\n"
            "print('state', run.state.type.value, flush=True)\n"
        )
        r = subprocess.run(
            [str(project.REPO / ".venv" / "bin" / "python"), "-c", trigger],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=700,
        )
        assert "schedule 0 3 * * *" in r.stdout, r.stderr[-3000:] + (tmp_path / "server.log").read_text()[-3000:]
        assert "state COMPLETED" in r.stdout, r.stdout + r.stderr[-3000:]
        assert (root / "outputs" / "shards" / "shards.json").exists()
    finally:
        for p in (served, server):
            if p is not None:
                p.kill()
