"""The Redis URL the chart renders for Redis Cluster over TLS (ci/cluster-tls-hpa-values.yaml) works: the
gateway, given that URL with REDIS_URL from its Secret and the CA where the chart mounts it, admits requests
through a three-node TLS-only Redis Cluster that checks the certificate chain and the host name."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from deploy.tools import CI_VALUES, render, rendered_files
from harness import TEST_KEY, free_port, start_gateway
from redis.cluster import RedisCluster
from redis_procs import REDIS_SERVER, free_cluster_port

from gateway.auth import digest
from gateway.fake.testing import FakeUpstream

CA_MOUNT = "/etc/llm-gateway/redis-tls/ca.crt"  # where the chart mounts redis.tls.caSecret


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def certificates(directory: Path) -> None:
    """A CA, and a server certificate it signs for 127.0.0.1 and localhost."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.crt", cwd=directory)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=redis", "-keyout", "redis.key", "-out", "redis.csr",
            cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "redis.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "san.ext", "-out", "redis.crt", cwd=directory)  # fmt: skip


@pytest.fixture
def tls_cluster(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """(a node's TLS port, the CA file) of a three-node cluster speaking only TLS, bus included."""
    certificates(tmp_path)
    tls = ["--tls-cert-file", "redis.crt", "--tls-key-file", "redis.key", "--tls-ca-cert-file", "ca.crt"]
    ports: list[int] = []
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(3):
            ports.append(free_cluster_port(after=max(ports, default=0)))
            command = [
                REDIS_SERVER, "--port", "0", "--tls-port", str(ports[-1]), "--bind", "127.0.0.1", *tls,
                "--tls-cluster", "yes", "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
                "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{ports[-1]}.conf",
            ]  # fmt: skip
            nodes.append(subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cli = ["redis-cli", "--tls", "--cacert", str(tmp_path / "ca.crt")]
        deadline = time.monotonic() + 10
        while (
            subprocess.run([*cli, "-p", str(ports[0]), "ping"], capture_output=True, text=True).stdout.strip() != "PONG"
        ):
            assert time.monotonic() < deadline, "the TLS nodes did not start"
            time.sleep(0.05)
        subprocess.run(
            [
                *cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        while (
            "cluster_state:ok"
            not in subprocess.run([*cli, "-p", str(ports[0]), "cluster", "info"], capture_output=True, text=True).stdout
        ):
            assert time.monotonic() < deadline + 20, "the cluster did not reach cluster_state:ok"
            time.sleep(0.1)
        yield ports[0], tmp_path / "ca.crt"
    finally:
        for node in nodes:
            node.kill()
            node.wait()


def test_the_gateway_runs_on_the_charts_cluster_tls_url(
    tmp_path: Path, tls_cluster: tuple[int, Path], fresh_fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    node_port, ca = tls_cluster
    config, _ = rendered_files(render(CI_VALUES))
    url = config["state"]["redis_url"]
    assert url == "${REDIS_URL}?cluster=true&ssl_ca_certs=" + CA_MOUNT
    port = free_port()
    ours = {
        "server": {"port": port, "drain_delay_seconds": 0, "access_log": False},
        "state": {"redis_url": url.replace(CA_MOUNT, str(ca))},  # the chart's URL, the CA where it is here
        "limits": {"key_prefix": f"tls-{port}"},
        "providers": {
            "a": {
                "kind": "openai",
                "base_url": f"{fresh_fakes[0].url}/v1",
                "api_key_env": "FAKE_UPSTREAM_KEY",
                "limits": {"rpm": 600, "tpm": 1_000_000},
                "models": {"tls-model": {}},
            }
        },
        "keys": [{"name": "tester", "key_sha256": digest(TEST_KEY), "models": ["*"], "limits": {"rpm": 600}}],
    }
    gateway = start_gateway(
        tmp_path / "gw", yaml.safe_dump(ours), port, env={"REDIS_URL": f"rediss://localhost:{node_port}/0"}
    )
    try:
        deadline = time.monotonic() + 10
        while (ready := httpx.get(f"{gateway.url}/readyz", timeout=2).json())["checks"]["limits"] != "redis":
            assert time.monotonic() < deadline, ready
            time.sleep(0.1)
        answer = httpx.post(
            f"{gateway.base_url}/chat/completions",
            json={"model": "tls-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
            headers={"authorization": f"Bearer {TEST_KEY}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-ratelimit-limit-requests"] == "600"  # admitted by the buckets in the cluster
        assert "gateway_limiter_degraded 0.0" in httpx.get(f"{gateway.url}/metrics", timeout=5).text
        cluster = RedisCluster(host="localhost", port=node_port, ssl=True, ssl_ca_certs=str(ca))
        try:
            buckets = cluster.keys(f"{{tls-{port}}}*", target_nodes=RedisCluster.ALL_NODES)
        finally:
            cluster.close()
        assert buckets, "no bucket of this gateway in the cluster"
    finally:
        gateway.stop()
