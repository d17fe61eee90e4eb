"""``gateway`` command: serve (default), check, explain-free helpers, and the fake upstream."""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence

from gateway.config import ConfigError, config_path, load_settings
from gateway.config.defaults import DEMO_ADMIN_KEY, DEMO_KEY, DEMO_UPSTREAM_ENV, DEMO_UPSTREAM_KEY
from gateway.config.model import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="OpenAI-compatible LLM gateway")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the gateway (the default command)")
    serve.add_argument("--config", help="config file (default: $GATEWAY_CONFIG, else the built-in default)")
    check = sub.add_parser("check", help="validate the configuration and exit non-zero on errors")
    check.add_argument("--config")
    explain = sub.add_parser("explain", help="show how a request would be routed, sending nothing upstream")
    explain.add_argument("request", help="a JSON file with the chat (or embeddings) request, or - for stdin")
    explain.add_argument("--config")
    explain.add_argument("--key", help="the virtual key name to act as (default: every model allowed)")
    explain.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a request header, e.g. x-gateway-task:simple (repeatable)",
    )
    explain.add_argument("--endpoint", choices=["chat", "embeddings"], default="chat")
    hash_key = sub.add_parser("hash-key", help="print the sha256 digest to put in keys[].key_sha256")
    hash_key.add_argument("key")
    # Its options belong to gateway.fake.cli, imported only when used so serving never loads the fake.
    sub.add_parser("fake-upstream", help="run the fake OpenAI-compatible provider (--help for options)")
    return parser


def _fake_upstream(argv: list[str]) -> int:
    from gateway.fake import cli as fake_cli

    parser = argparse.ArgumentParser(prog="gateway fake-upstream", description="fake OpenAI-compatible provider")
    fake_cli.add_arguments(parser)
    return fake_cli.run(parser.parse_args(argv))


def _complain(what: str, errors: list[str]) -> None:
    print(f"{what} is invalid ({len(errors)} error{'s' * (len(errors) != 1)}):", file=sys.stderr)
    for line in errors:
        print(f"  {line}", file=sys.stderr)


def _load(path: str | None) -> Settings | None:
    """Settings and the routing policy they point at, both validated; None after printing every error."""
    from gateway.routing.policy_load import PolicyError, load_policies

    try:
        settings = load_settings(path)
    except ConfigError as e:
        _complain("configuration", e.errors)
        return None
    try:
        load_policies(settings.policy_dir, {d.id: d for d in settings.deployments})
    except PolicyError as e:
        _complain(f"routing policy in {settings.policy_dir}", e.errors)
        return None
    return settings


def _explain(path: str | None, args: argparse.Namespace) -> int:
    import orjson

    from gateway.routing.explain import ADMIN_VIEW, explain
    from gateway.routing.policy_load import load_policies
    from gateway.routing.resolve import ModelIndex
    from gateway.routing.snapshot import Snapshot

    settings = _load(path)
    if settings is None:
        return 1
    raw = sys.stdin.read() if args.request == "-" else open(args.request, encoding="utf-8").read()
    request = orjson.loads(raw)
    key = ADMIN_VIEW
    if args.key:
        key = next((k for k in settings.keys if k.name == args.key), ADMIN_VIEW)
        if key is ADMIN_VIEW:
            print(f"no virtual key is named {args.key!r}", file=sys.stderr)
            return 1
    headers = dict(h.split(":", 1) for h in args.header if ":" in h)
    deployments = {d.id: d for d in settings.deployments}
    policy = load_policies(settings.policy_dir, deployments)
    result = explain(
        policy,
        deployments,
        ModelIndex.build(settings),
        Snapshot(),
        request,
        key,
        {k.strip(): v.strip() for k, v in headers.items()},
        args.endpoint,
    )
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0 if "error" not in result else 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _demo_upstream() -> Iterator[None]:
    """Start the built-in fake providers for the demo and stop them when the gateway stops."""
    port = _free_port()
    os.environ[DEMO_UPSTREAM_ENV] = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "fake-upstream",
            "--port",
            str(port),
            "--api-key",
            DEMO_UPSTREAM_KEY,
            "--latency-ms",
            "20",
            "--ttft-ms",
            "150",
            "--tokens-per-second",
            "60",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if "listening" not in proc.stdout.readline():
            raise SystemExit(f"the demo's fake providers did not start (exit code {proc.wait()})")
        yield
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def _serve(path: str | None) -> int:
    from gateway import server
    from gateway.config.defaults import default_document
    from gateway.providers import REGISTRY

    demo = path is None and default_document(os.environ, frozenset(REGISTRY))["demo"]
    with _demo_upstream() if demo else contextlib.nullcontext():
        settings = _load(path)
        if settings is None:
            return 2
        host, port = settings.server.host, settings.server.port
        if settings.demo:
            print(
                f"llm-gateway demo on http://{host}:{port}/v1 with the built-in fake providers\n"
                f"  virtual key: {DEMO_KEY}    admin key: {DEMO_ADMIN_KEY}\n"
                f"  try: curl -s http://{host}:{port}/v1/models -H 'Authorization: Bearer {DEMO_KEY}'",
                flush=True,
            )
        else:
            print(f"llm-gateway on http://{host}:{port}/v1 ({settings.source})", flush=True)
        server.run(settings, path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fake-upstream"]:
        return _fake_upstream(argv[1:])
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    if command == "hash-key":
        from gateway.auth import digest

        print(digest(args.key))
        return 0
    path = config_path(getattr(args, "config", None), os.environ)
    if command == "explain":
        return _explain(path, args)
    if command == "check":
        settings = _load(path)
        if settings is None:
            return 1
        from gateway.routing.policy_load import load_policies

        policy = load_policies(settings.policy_dir, {d.id: d for d in settings.deployments})
        print(
            f"{settings.source}: ok — {len(settings.accounts)} provider accounts, "
            f"{len(settings.deployments)} deployments, {len(settings.keys)} keys; "
            f"policy {policy.version} ({settings.policy_dir}): {len(policy.routes)} routes, "
            f"{len(policy.aliases)} aliases"
        )
        return 0
    return _serve(path)
