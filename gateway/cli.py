"""``gateway`` command: serve (default), check, explain-free helpers, and the fake upstream."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Sequence

import orjson

from gateway.config import FLAGS_ENV, ConfigError, config_path, load_settings, with_flags
from gateway.config.defaults import DEMO_ADMIN_KEY, DEMO_KEY, DEMO_PREMIUM_KEY
from gateway.config.model import Settings
from gateway.providers import REGISTRY
from gateway.routing.policy import Policy


def _version() -> str:
    try:
        return importlib.metadata.version("llm-gateway")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def number(text: str) -> int:
        if not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {text!r}")
        return int(text)

    return number


# Every command, one line each: `gateway --help` lists them from here.
COMMANDS = {
    "serve": "run the gateway (the default command)",
    "check": "validate the configuration and its routing policy, then exit",
    "explain": "show how a request would be routed, sending nothing upstream",
    "hash-key": "print the sha256 digest to put in keys[].key_sha256",
    "fake-upstream": "run a fake OpenAI-compatible provider (gateway fake-upstream --help)",
    "spend": "what was spent and by whom, and the budgets (gateway spend --help)",
    "simulate": "what a routing policy sustains and costs, in virtual time (gateway simulate --help)",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="OpenAI-compatible LLM gateway. With no command it serves.",
        epilog="commands:\n" + "\n".join(f"  {name:<15}{text}" for name, text in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"llm-gateway {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="command", help="one of the commands below")

    def command(name: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, description=COMMANDS[name])

    serve = command("serve")
    serve.add_argument("--config", help="config file (default: $GATEWAY_CONFIG, else the built-in default)")
    serve.add_argument("--host", help="address to listen on (overrides server.host)")
    serve.add_argument("--port", type=_bounded(0, 65535), help="port to listen on (overrides server.port)")
    serve.add_argument("--workers", type=_bounded(1, 1024), help="worker processes (overrides server.workers)")
    check = command("check")
    check.add_argument("--config")
    explain = command("explain")
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
    hash_key = command("hash-key")
    hash_key.add_argument("key")
    # Its options belong to gateway.fake.cli, imported only when used so serving never loads the fake.
    command("fake-upstream")
    command("spend")  # its options: gateway.spend.cli
    # Its options belong to gateway.sim.cli, imported only when used so serving never loads the simulator.
    command("simulate")
    return parser


def _fake_upstream(argv: list[str]) -> int:
    from gateway.fake import cli as fake_cli

    parser = argparse.ArgumentParser(prog="gateway fake-upstream", description="fake OpenAI-compatible provider")
    fake_cli.add_arguments(parser)
    return fake_cli.run(parser.parse_args(argv))


def _simulate(argv: list[str]) -> int:
    from gateway.sim import cli as sim_cli

    parser = argparse.ArgumentParser(prog="gateway simulate", description=COMMANDS["simulate"])
    sim_cli.add_arguments(parser)
    return sim_cli.run(parser.parse_args(argv))


def _spend(argv: list[str]) -> int:
    from gateway.spend import cli as spend_cli

    parser = argparse.ArgumentParser(prog="gateway spend", description=COMMANDS["spend"])
    spend_cli.add_arguments(parser)
    return spend_cli.run(parser.parse_args(argv))


def _complain(what: str, errors: list[str]) -> None:
    print(f"{what} is invalid ({len(errors)} error{'s' * (len(errors) != 1)}):", file=sys.stderr)
    for line in errors:
        print(f"  {line}", file=sys.stderr)


def _load(path: str | None) -> tuple[Settings, Policy] | None:
    """Settings and the routing policy they point at, both validated; None after printing every error."""
    from gateway.routing.policy_load import PolicyError, load_policies

    try:
        settings = load_settings(path, kinds=REGISTRY)
    except ConfigError as e:
        _complain("configuration", e.errors)
        return None
    try:
        deployments = {d.id: d for d in settings.deployments}
        return settings, load_policies(settings.policy_dir, deployments, max_bytes=settings.policy_max_bytes)
    except PolicyError as e:
        _complain(f"routing policy in {settings.policy_dir}", e.errors)
        return None


def _explain(path: str | None, args: argparse.Namespace) -> int:
    import orjson

    from gateway.api.intake import check
    from gateway.errors import GatewayError
    from gateway.routing.explain import ADMIN_VIEW, explain, refusal
    from gateway.routing.resolve import ModelIndex
    from gateway.routing.snapshot import Snapshot

    loaded = _load(path)
    if loaded is None:
        return 1
    settings, policy = loaded
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
    try:
        check(request, args.endpoint, settings.limits.max_n)
    except GatewayError as e:
        result = refusal(policy, e)
    else:
        result = explain(
            policy,
            deployments,
            ModelIndex.build(settings),
            Snapshot(),
            request,
            key,
            {k.strip(): v.strip() for k, v in headers.items()},
            args.endpoint,
            settings.limits.default_output_tokens,
        )
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0 if "error" not in result else 1


def _flags(args: argparse.Namespace) -> dict[str, str]:
    """The serve flags given, as the environment that hands them to this process and its workers."""
    given = {n: v for n in ("host", "port", "workers") if (v := getattr(args, n, None)) is not None}
    return {FLAGS_ENV: orjson.dumps(given).decode()} if given else {}


def _banner(settings: Settings, upstream: str | None) -> str:
    host, port = settings.server.host, settings.server.port
    policy = settings.policy_dir or "none"
    if upstream is None:
        return f"llm-gateway on http://{host}:{port}/v1 ({settings.source}; policy: {policy})"
    return (
        f"llm-gateway demo on http://{host}:{port}/v1: the example accounts and policy ({policy})\n"
        f"  on the built-in fake providers at {upstream}\n"
        f"  virtual keys: {DEMO_KEY} (standard tier), {DEMO_PREMIUM_KEY} (premium)    admin key: {DEMO_ADMIN_KEY}\n"
        f"  try: curl -si http://{host}:{port}/v1/chat/completions -H 'Authorization: Bearer {DEMO_KEY}' "
        '-d \'{"model": "agent-default", "messages": [{"role": "user", "content": "Hi"}]}\''
    )


def _serve(path: str | None, args: argparse.Namespace) -> int:
    from gateway import demo, server
    from gateway.config.defaults import default_document

    wanted = path is None and default_document(os.environ, frozenset(REGISTRY))["demo"]
    try:
        with demo.fake_providers(os.environ) if wanted else contextlib.nullcontext() as upstream:
            loaded = _load(path)
            if loaded is None:
                return 2
            os.environ.update(_flags(args))
            settings = with_flags(loaded[0], os.environ)
            print(_banner(settings, upstream), flush=True)
            server.run(settings, path)
    except demo.DemoError as e:
        print(f"gateway: {e}", file=sys.stderr)
        return 2
    except ConfigError as e:  # found while building the app: AWS credentials that cannot be resolved, say
        _complain("configuration", e.errors)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fake-upstream"]:
        return _fake_upstream(argv[1:])
    if argv[:1] == ["spend"]:
        return _spend(argv[1:])
    if argv[:1] == ["simulate"]:
        return _simulate(argv[1:])
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
        loaded = _load(path)
        if loaded is None:
            return 1
        settings, policy = loaded
        where = settings.policy_dir or "no policy directory"
        print(
            f"{settings.source}: ok — {len(settings.accounts)} provider accounts, "
            f"{len(settings.deployments)} deployments, {len(settings.keys)} keys; "
            f"policy {policy.version} ({where}): {len(policy.routes)} routes, {len(policy.aliases)} aliases"
        )
        return 0
    return _serve(path, args)
