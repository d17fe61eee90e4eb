"""``gateway spend``: spend in one window, by key, tier, deployment, route and end user, with the budgets.

It reads the ledger in Redis (the config's ``state.redis_url``), or asks a running gateway
(``--url``, with the admin key in ``$GATEWAY_ADMIN_KEY``): without Redis the ledger lives in the
gateway's process. Both print ``GET /admin/spend``'s answer (``spend.report``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import httpx
import orjson

from gateway.config import ConfigError, config_path, load_settings
from gateway.config.model import Settings
from gateway.providers import REGISTRY
from gateway.spend.ledger import Ledger
from gateway.spend.report import BadQuery, Query, report
from gateway.state.ledger import RedisLedger
from gateway.state.store import REDIS_FAILURES, KeyLayout, Scripts, build_client

ADMIN_KEY_ENV = "GATEWAY_ADMIN_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: $GATEWAY_CONFIG, else the built-in default)")
    parser.add_argument("--url", help=f"ask the gateway at this URL instead (admin key in ${ADMIN_KEY_ENV})")
    parser.add_argument("--key", help="one virtual key: its spend, its end users and its budgets")
    parser.add_argument("--end-user", help="one end user (under every key, or the one given)")
    parser.add_argument("--tier", help="one tier")
    parser.add_argument("--window", default="day", help="day, month (the current ones), YYYY-MM-DD or YYYY-MM")
    parser.add_argument("--top", type=int, default=10, help="end users to list, highest spend first")


def _query(args: argparse.Namespace) -> Query:
    return Query(args.key, args.end_user, args.tier, args.window, args.top)


async def _from_redis(settings: Settings, query: Query) -> dict[str, Any]:
    client = build_client(settings.redis_url)
    try:
        tables = RedisLedger(client, Scripts(client), KeyLayout(settings.limits.key_prefix))
        return await report(Ledger(tables), settings, query, time.time())
    finally:
        await client.aclose()


def _from_gateway(url: str, query: Query) -> tuple[int, Any]:
    params = {k: v for k, v in vars(query).items() if v is not None}
    headers = {"authorization": f"Bearer {os.environ.get(ADMIN_KEY_ENV, '')}"}
    answer = httpx.get(f"{url.rstrip('/')}/admin/spend", params=params, headers=headers, timeout=10)
    return answer.status_code, answer.json()


def run(args: argparse.Namespace) -> int:
    query = _query(args)
    if args.url:
        try:
            status, body = _from_gateway(args.url, query)
        except (httpx.HTTPError, ValueError) as e:
            print(f"gateway spend: {args.url}: {e}", file=sys.stderr)
            return 1
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return 0 if status == 200 else 1
    try:
        settings = load_settings(config_path(args.config, os.environ), kinds=REGISTRY)
    except ConfigError as e:
        print(f"gateway spend: the configuration is invalid: {'; '.join(e.errors)}", file=sys.stderr)
        return 1
    if not settings.redis_url:
        print(
            "gateway spend: without state.redis_url the ledger lives in the gateway's process: "
            f"ask it with --url (admin key in ${ADMIN_KEY_ENV})",
            file=sys.stderr,
        )
        return 1
    try:
        answer = asyncio.run(_from_redis(settings, query))
    except BadQuery as e:
        print(f"gateway spend: {e}", file=sys.stderr)
        return 1
    except REDIS_FAILURES as e:
        print(f"gateway spend: Redis did not answer: {e!r}", file=sys.stderr)
        return 1
    print(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
    return 0
