"""The preferred fake upstream: Debian's nginx serving the static bodies from memory.

`return 200 '<body>'` answers a POST directly (the static file handler would refuse it with
405), reads nothing from disk and logs nothing, so one pinned worker is far from a bottleneck.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.fixtures import HEALTH_PATH, JSON_PATH, STREAM_PATH, chat_completion, chat_completion_stream

NGINX = "/usr/sbin/nginx"


def available() -> str | None:
    """The nginx binary's path, or None when it is not installed."""
    return NGINX if Path(NGINX).exists() else shutil.which("nginx")


def quoted(body: bytes) -> str:
    """`body` as a single-quoted nginx string (nginx turns \\n back into a newline)."""
    text = body.decode()
    if "$" in text:
        raise ValueError("nginx would interpolate '$' in a return body")
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def config(workdir: Path, port: int) -> str:
    """A self-contained nginx.conf: no root paths, foreground, one worker, no access log."""
    temp = [
        f"    {kind}_temp_path {workdir / ('nginx-' + kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    ]
    lines = [
        "daemon off;",
        "worker_processes 1;",
        f"pid {workdir / 'nginx.pid'};",
        f"error_log {workdir / 'nginx-error.log'} warn;",
        "events { worker_connections 4096; }",
        "http {",
        "    access_log off;",
        "    keepalive_requests 10000000;",
        "    keepalive_timeout 300s;",
        *temp,
        "    server {",
        f"        listen 127.0.0.1:{port} backlog=1024;",
        f"        location = {JSON_PATH} {{",
        "            default_type application/json;",
        f"            return 200 {quoted(chat_completion())};",
        "        }",
        f"        location = {STREAM_PATH} {{",
        "            default_type text/event-stream;",
        f"            return 200 {quoted(chat_completion_stream())};",
        "        }",
        f"        location = {HEALTH_PATH} {{ default_type text/plain; return 200 'ok'; }}",
        "        location / { return 404; }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def command(binary: str, workdir: Path, port: int) -> list[str]:
    """Write the config into `workdir` and return the argv that runs nginx on it."""
    conf = workdir / "nginx.conf"
    conf.write_text(config(workdir, port))
    error_log = str(workdir / "nginx-error.log")
    return [binary, "-p", str(workdir), "-c", str(conf), "-e", error_log]
