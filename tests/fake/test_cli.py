import argparse
import signal
import subprocess
import sys

import httpx

from gateway.fake import cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_become_settings() -> None:
    settings = cli.settings_from_args(
        parse(
            "--port",
            "0",
            "--api-key",
            "k",
            "--latency-ms",
            "20",
            "--failure-kind",
            "429",
            "--rpm",
            "60",
            "--tokens-per-second",
            "30",
            "--default-completion-tokens",
            "4",
            "--seed",
            "3",
        )
    )
    assert (settings.host, settings.port, settings.api_key, settings.rpm, settings.tpm, settings.seed) == (
        "127.0.0.1",
        0,
        "k",
        60,
        None,
        3,
    )
    behaviour = settings.behaviour
    assert (behaviour.latency_ms, behaviour.failure_kind, behaviour.tokens_per_second) == (20, "429", 30)
    assert behaviour.default_completion_tokens == 4
    assert parse().port == 9100


def test_bad_values_exit_2() -> None:
    assert cli.run(parse("--failure-rate", "2")) == 2
    assert cli.run(parse("--rpm", "0")) == 2


def test_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.fake", "--port", "0", "--api-key", "sk-cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("fake upstream listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        response = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer sk-cli"})
        assert response.status_code == 200 and response.json()["object"] == "list"
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert process.stderr is not None and process.stderr.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
