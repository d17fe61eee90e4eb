"""Redis over TLS (``rediss://``) against a real TLS redis-server, with a CA and certificate made here."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from harness import TEST_KEY, start_gateway
from ratelimit.support import ACCOUNT, QUOTA_KEY, Fleet, account, config, key, readiness
from redis_procs import RedisServer, free_port

from gateway.fake.testing import FakeUpstream


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server that speaks TLS only, with a certificate for 127.0.0.1 signed by a fresh CA."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=tmp_path)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
             "-out", "server.csr", cwd=tmp_path)  # fmt: skip
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "1", "-extfile", "san.ext", "-out", "server.crt", cwd=tmp_path)  # fmt: skip
    port = free_port()
    server = RedisServer(
        free_port(),
        "--tls-port", str(port), "--tls-cert-file", str(tmp_path / "server.crt"),
        "--tls-key-file", str(tmp_path / "server.key"), "--tls-ca-cert-file", str(tmp_path / "ca.crt"),
        "--tls-auth-clients", "no",
    )  # fmt: skip
    server.start()  # answers PING on its plain port once it is up; the gateway gets only the TLS port
    yield port, tmp_path / "ca.crt"
    server.kill()


def test_limits_over_tls(
    fleet: Fleet, make_fake: Callable[..., FakeUpstream], prefix: str, tls_redis: tuple[int, Path]
) -> None:
    port, ca = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    fake = make_fake()
    providers = {ACCOUNT: account(fake.url, {"gpt-4o-mini": {}})}
    keys = [key("tester", TEST_KEY), key("quota", QUOTA_KEY, limits={"rpm": 2})]
    a, b = fleet.start(lambda p: config(p, redis_url=url, prefix=prefix, providers=providers, keys=keys), 2)
    assert readiness(a) == readiness(b) == "redis"

    def ask(base: str) -> httpx.Response:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "tls?"}], "max_tokens": 3}
        return httpx.post(f"{base}/chat/completions", json=body, headers={"authorization": f"Bearer {QUOTA_KEY}"})

    # The key's quota is shared by both replicas through the TLS Redis.
    assert ask(a.base_url).status_code == 200 and ask(b.base_url).status_code == 200
    assert ask(a.base_url).status_code == 429
    assert readiness(a) == readiness(b) == "redis"


def test_an_untrusted_certificate_is_refused(
    tmp_path: Path, make_fake: Callable[..., FakeUpstream], prefix: str, tls_redis: tuple[int, Path]
) -> None:
    """Without our CA the TLS handshake fails: the gateway never talks to a Redis it cannot verify, and
    serves on local shares of its limits meanwhile."""
    port, _ = tls_redis
    fake = make_fake()
    providers = {ACCOUNT: account(fake.url, {"gpt-4o-mini": {}})}
    listen = free_port()
    url = f"rediss://127.0.0.1:{port}/0"
    gateway = start_gateway(tmp_path / "gw", config(listen, redis_url=url, prefix=prefix, providers=providers), listen)
    try:
        assert readiness(gateway) == "degraded"
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "tls?"}], "max_tokens": 3}
        answer = httpx.post(
            f"{gateway.base_url}/chat/completions", json=body, headers={"authorization": f"Bearer {TEST_KEY}"}
        )
        assert answer.status_code == 200
    finally:
        gateway.stop()
