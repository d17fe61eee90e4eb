"""Running wrk with the bench's Lua scripts and reading its one-line JSON summary."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.processes import die_with_parent, pinned

WRK = "/usr/bin/wrk"
HERE = Path(__file__).resolve().parent
SCRIPTS = {"json": HERE / "post_json.lua", "stream": HERE / "post_stream.lua"}
MARKER = "BENCH_RESULT "


def available() -> str | None:
    """The wrk binary's path, or None when it is not installed."""
    return WRK if Path(WRK).exists() else shutil.which("wrk")


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: counts, latency percentiles (µs) and errors."""

    requests: int
    duration_s: float
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float
    non_2xx: int  # wrk's errors.status: responses with status >= 400
    socket_errors: int  # connect + read + write + timeout

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def ok(self) -> bool:
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rps": round(self.rps, 1), "ok": self.ok}


class WrkError(RuntimeError):
    pass


def parse(stdout: str) -> WrkResult:
    """The WrkResult from wrk's output (the line printed by wrk_summary.lua's done())."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            raw = json.loads(line[len(MARKER) :])
            return WrkResult(
                requests=int(raw["requests"]),
                duration_s=raw["duration_us"] / 1e6,
                p50_us=float(raw["p50_us"]),
                p90_us=float(raw["p90_us"]),
                p99_us=float(raw["p99_us"]),
                max_us=float(raw["max_us"]),
                non_2xx=int(raw["status"]),
                socket_errors=sum(int(raw[k]) for k in ("connect", "read", "write", "timeout")),
            )
    raise WrkError(f"no {MARKER.strip()} line in wrk output:\n{stdout}")


def run(binary: str, cpu: int, port: int, path: str, kind: str, connections: int, duration: float) -> WrkResult:
    """Run wrk pinned to `cpu` with one thread and `connections` keep-alive connections."""
    argv = [
        binary,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPTS[kind]),
        f"http://127.0.0.1:{port}{path}",
    ]
    proc = subprocess.run(
        pinned(cpu, argv),
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
        preexec_fn=die_with_parent,
    )
    if proc.returncode != 0:
        raise WrkError(f"wrk exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return parse(proc.stdout)
