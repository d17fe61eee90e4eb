"""The image, built from the Dockerfile by podman on a base made from Debian's packages (no image registry is
reachable here: scripts/ensure-deploy-tools builds localhost/llm-gateway-base:bookworm with debootstrap, with
Debian's Python 3.11 where the official image has its own), started the way Kubernetes starts it: read-only
root, no capabilities, no privilege escalation, its own non-root user, a mounted config, two workers.

It answers /readyz and a request from the official SDK, passes its HEALTHCHECK, and on SIGTERM drains:
/readyz turns 503, a stream in flight finishes, the container exits 0.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from deploy.tools import ROOT, run, tool
from harness import TEST_KEY, UPSTREAM_KEY, free_port

from gateway.auth import digest
from gateway.fake.testing import FakeUpstream

pytestmark = pytest.mark.slow  # builds an image (about a minute the first time; cached after)

BASE_IMAGE = "localhost/llm-gateway-base:bookworm"
IMAGE = "localhost/llm-gateway:test"
PODMAN_ENV = {"CONTAINERS_CONF": str(Path(__file__).with_name("containers.conf"))}
DRAIN_S, GRACE_S = 2, 10


def podman(*args: str, timeout: float = 120) -> str:
    return run(tool("podman"), *args, timeout=timeout, env=PODMAN_ENV)


@pytest.fixture(scope="module")
def image() -> str:
    if subprocess.run([tool("podman"), "image", "exists", BASE_IMAGE], env={**os.environ, **PODMAN_ENV}).returncode:
        pytest.fail(f"{BASE_IMAGE} is missing: `make test` builds it (scripts/ensure-deploy-tools, as root)")
    # --network host: the build's pip reaches PyPI the way this machine does.
    podman("build", "--quiet", "--network", "host", "--format", "docker", "--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}",
           "--tag", IMAGE, str(ROOT), timeout=900)  # fmt: skip
    return IMAGE


def locked(path: Path) -> dict[str, str]:
    """name -> version pinned by a lock file."""
    pins = [line.split("#")[0].split(";")[0].strip() for line in path.read_text().splitlines()]
    return {name.lower().replace("_", "-"): version for name, _, version in (p.partition("==") for p in pins if p)}


def test_the_image_holds_the_runtime_lock_and_no_dev_tools(image: str) -> None:
    listing = podman(
        "run", "--rm", "--entrypoint", "python3", image, "-c",
        "import importlib.metadata as m\nfor d in m.distributions(): print(d.metadata['Name'], d.version)",
    )  # fmt: skip
    installed = {
        name.lower().replace("_", "-"): version for name, version in (ln.split() for ln in listing.splitlines())
    }
    runtime, dev = locked(ROOT / "requirements.lock"), locked(ROOT / "requirements-dev.lock")
    assert {name: installed.get(name) for name in runtime} == runtime  # every runtime pin, at its version
    dev_only = (installed.keys() - runtime.keys()) & dev.keys()
    assert not dev_only, f"dev-only packages in the image: {sorted(dev_only)}"
    assert "llm-gateway" in installed and "opentelemetry-sdk" not in installed  # tracing: --build-arg TRACING=1


def config(upstream: str) -> str:
    return f"""
server:
  host: 127.0.0.1
  port: ${{GATEWAY_PORT}}  # as config/gateway.yaml does: the image's HEALTHCHECK asks this port
  drain_delay_seconds: {DRAIN_S}
  shutdown_grace_seconds: {GRACE_S}
providers:
  fake:
    kind: openai
    base_url: {upstream}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    models:
      img-model: {{}}
keys:
  - name: tester
    key_sha256: {digest(TEST_KEY)}
    models: ["*"]
"""


@pytest.fixture
def container(image: str, tmp_path: Path, fresh_fakes: tuple[FakeUpstream, FakeUpstream]) -> Iterator[tuple[str, str]]:
    """(name, base URL) of the running container; removed afterwards."""
    port = free_port()
    (tmp_path / "gateway.yaml").write_text(config(fresh_fakes[0].url))
    name = f"llm-gateway-test-{uuid.uuid4().hex[:8]}"
    podman(
        "run", "--detach", "--name", name, "--network", "host",
        "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--volume", f"{tmp_path / 'gateway.yaml'}:/etc/llm-gateway/gateway.yaml:ro",
        "--env", "GATEWAY_CONFIG=/etc/llm-gateway/gateway.yaml", "--env", "GATEWAY_WORKERS=2",
        "--env", f"GATEWAY_PORT={port}", "--env", f"FAKE_UPSTREAM_KEY={UPSTREAM_KEY}",
        image,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, podman("logs", name)
            time.sleep(0.1)
        yield name, url
    finally:
        subprocess.run([tool("podman"), "rm", "--force", name], capture_output=True, env={**os.environ, **PODMAN_ENV})


def test_the_image_serves_unprivileged_and_drains_on_sigterm(
    container: tuple[str, str], fresh_fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    name, url = container
    assert httpx.get(f"{url}/readyz").json()["status"] == "ready"
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=TEST_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="img-model", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert raw.headers["x-gateway-deployment"] == "fake/img-model" and raw.parse().choices[0].message.content

    assert podman("healthcheck", "run", name).strip() in ("", "healthy")  # exits non-zero when unhealthy
    assert podman("exec", name, "id", "-u").strip() == "10001"
    processes = podman("top", name, "pid", "user", "args").splitlines()[1:]
    first = next(line.split(None, 2) for line in processes if line.split()[0] == "1")
    assert first[1] == "gateway" and "gateway serve --workers 2" in first[2]  # the gateway is PID 1, not a shell
    assert len([p for p in processes if "multiprocessing.spawn" in p]) == 2  # two workers
    # Memory after a request, per process (the chart's default memory request is sized from it).
    rss = {}
    for pid, *_ in (line.split(None, 2) for line in processes):
        status = podman("exec", name, "cat", f"/proc/{pid}/status")
        rss[pid] = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024
    workers = [rss[line.split()[0]] for line in processes if "multiprocessing.spawn" in line]
    others = sum(rss.values()) - sum(workers)
    print(f"IMAGE_RSS: workers {', '.join(f'{w:.0f}' for w in workers)} MiB, supervisor and tracker {others:.0f} MiB")
    assert all(w < 192 for w in workers) and others < 64  # values.yaml: 192Mi requested for one worker
    written = subprocess.run(
        [tool("podman"), "exec", name, "touch", "/opt/venv/x"], capture_output=True, env={**os.environ, **PODMAN_ENV}
    )
    assert written.returncode != 0  # read-only root

    # A stream of about two seconds is in flight when Kubernetes (here podman) sends SIGTERM.
    fresh_fakes[0].configure(model="img-model", tokens_per_second=12)
    streamed: list[str] = []

    def stream() -> None:
        chunks = client.chat.completions.create(
            model="img-model", messages=[{"role": "user", "content": "Hi"}], max_tokens=24, stream=True
        )
        streamed.extend(c.choices[0].finish_reason or "" for c in chunks if c.choices)

    reader = threading.Thread(target=stream)
    reader.start()
    time.sleep(0.3)
    stopped = time.monotonic()
    podman("kill", "--signal", "TERM", name)
    # uvicorn's supervisor passes the signal on to its workers within half a second; they then answer 503,
    # and keep serving until the drain delay is over.
    while httpx.get(f"{url}/readyz", timeout=2).status_code != 503:
        assert time.monotonic() - stopped < 1.5, "/readyz did not turn 503"
        time.sleep(0.05)
    assert time.monotonic() - stopped < DRAIN_S
    assert podman("wait", name, timeout=DRAIN_S + GRACE_S + 15).strip() == "0"
    took = time.monotonic() - stopped
    reader.join(timeout=10)
    assert streamed and streamed[-1] == "length"  # the stream in flight finished
    assert DRAIN_S <= took < DRAIN_S + GRACE_S, took
    print(f"IMAGE: drained and exited 0 in {took:.2f} s (drain {DRAIN_S} s)")
