"""A provider outage in the workload: the gateway's own fallback and circuit breaker, as the report shows them.

The primary deployment answers 503 from 100 s to 200 s. Each request tries it twice (one same-deployment
retry), then falls back to the backup; after 20 failures in a row the circuit opens and requests go straight
to the backup; every 15 s two probes find the primary still down; after 200 s a probe finds it well and the
circuit closes. Clients see no error.
"""

from __future__ import annotations

from pathlib import Path

from sim.support import openai_account, simulate, write


def test_an_outage_falls_back_and_opens_the_circuit(tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    write(
        policy / "routes.yaml",
        {
            "routes": {
                "agent": [{"name": "all", "candidates": ["primary/gpt-4o-mini"], "fallback": ["backup/gpt-4o-mini"]}]
            }
        },
    )
    config = write(
        tmp_path / "gateway.yaml",
        {
            "providers": {"primary": openai_account(), "backup": openai_account()},
            "keys": [],
            "policies": {"dir": str(policy)},
        },
    )
    workload = write(
        tmp_path / "workload.yaml",
        {
            "seed": 11,
            "duration_s": 300,
            "arrivals": {"rate": {"constant": 5}},
            "classes": {"agent": {"share": 1.0, "model": "agent", "calls": 1, "prompt_tokens": 300}},
            "providers": {"*": {"ttft_ms": 300, "tokens_per_second": 100}},
            "outages": [{"target": "primary", "from_s": 100, "to_s": 200, "kind": "503"}],
        },
    )
    stdout, report = simulate(config, workload, tmp_path, "--no-search")

    assert report["client_error_rate"] == 0.0
    primary, backup = report["deployments"]["primary/gpt-4o-mini"], report["deployments"]["backup/gpt-4o-mini"]
    assert primary["attempts"]["503"] >= 20  # enough failures in a row to open the circuit
    assert backup["requests"] > 0.9 * 5 * 100  # about the whole outage's traffic
    assert report["fallbacks"]["after 503"] >= 10
    assert report["fallbacks"]["circuit open"] > 0.5 * backup["requests"]  # most went straight to the backup

    events = [(e["at_s"], e["state"]) for e in report["circuit"] if e["deployment"] == "primary/gpt-4o-mini"]
    opened = [t for t, state in events if state == "open"]
    assert 100 < opened[0] < 115  # ~10 requests of two tries each, at 5 a second
    assert any(state == "half_open" for _, state in events)  # probes while it was down
    closed = [t for t, state in events if state == "closed"]
    assert closed and 200 <= closed[-1] < 200 + 15 + 5  # the first probe after the outage closes it
    assert events[-1][1] == "closed"
    assert "circuit primary/gpt-4o-mini: opened at 0:01:" in stdout and "closed at 0:03:" in stdout
