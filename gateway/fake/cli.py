"""``gateway fake-upstream``: run the fake provider until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from gateway.fake.behaviour import FAILURE_KINDS, Behaviour, BehaviourError, FakeSettings
from gateway.fake.runner import start_server


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Behaviour()
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    add("--port", type=int, default=9100, help="port to listen on, 0 for any free one (default: %(default)s)")
    add(
        "--api-key",
        help="require this key: Authorization: Bearer (api-key on Azure paths, also x-api-key on Anthropic's "
        "/v1/messages); on Bedrock's /model/*/converse paths, the AWS secret access key SigV4 signatures are "
        "checked with (or a Bedrock API key)",
    )
    add("--latency-ms", type=float, default=defaults.latency_ms, help="delay before the response headers")
    add("--ttft-ms", type=float, default=defaults.ttft_ms, help="streams: delay before the first chunk")
    add(
        "--tokens-per-second",
        type=float,
        default=defaults.tokens_per_second,
        help="stream pacing, 0 = unpaced",
    )
    add("--failure-rate", type=float, default=defaults.failure_rate, help="share of requests that fail (0..1)")
    add("--failure-kind", choices=FAILURE_KINDS, default=defaults.failure_kind, help="how they fail")
    add("--rpm", type=int, help="requests-per-minute limit answered with real 429s")
    add("--tpm", type=int, help="tokens-per-minute limit answered with real 429s")
    add(
        "--default-completion-tokens",
        type=int,
        default=defaults.default_completion_tokens,
        help="completion length when a request sets no max tokens (default: %(default)s)",
    )
    add("--seed", type=int, default=0, help="seed of the failure RNG (default: %(default)s)")


def settings_from_args(args: argparse.Namespace) -> FakeSettings:
    behaviour = Behaviour(
        latency_ms=args.latency_ms,
        ttft_ms=args.ttft_ms,
        tokens_per_second=args.tokens_per_second,
        failure_rate=args.failure_rate,
        failure_kind=args.failure_kind,
        default_completion_tokens=args.default_completion_tokens,
    )
    for name in ("rpm", "tpm"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise BehaviourError(f"--{name} must be a positive integer")
    return FakeSettings(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        rpm=args.rpm,
        tpm=args.tpm,
        seed=args.seed,
        behaviour=behaviour,
    )


async def _serve(settings: FakeSettings) -> int:
    server = await start_server(settings)
    print(f"fake upstream listening on {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await server.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except BehaviourError as e:
        print(f"fake-upstream: {e}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(settings))
    except OSError as e:  # the port is taken, or the host is not ours
        print(f"fake-upstream: cannot listen on {settings.host}:{settings.port}: {e}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway fake-upstream", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
