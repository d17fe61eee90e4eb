"""Why aiohttp, and why litellm only for the long tail: client CPU per call, measured here.

    .venv/bin/python bench/clients.py [--calls 2000] [--litellm-calls 200]

Each client makes small chat-completion calls, one after another, to the bench's asyncio upstream
(another process, on the other core); the CPU this process spends per call is the client's cost.
litellm is measured in a child process of its own (importing it is part of what is measured).
Targets, checked on the medians of 3 rounds: aiohttp costs at most half of httpx's CPU per call,
and litellm at least 5x aiohttp's; the exit status is 1 when one fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fixtures import JSON_PATH  # noqa: E402
from bench.processes import free_port  # noqa: E402

BODY = json.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "Hello"}]}).encode()
HEADERS = {"content-type": "application/json", "authorization": "Bearer bench"}


async def _aiohttp(url: str, calls: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        await (await session.post(url, data=BODY, headers=HEADERS)).read()
        start = time.process_time()
        for _ in range(calls):
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                json.loads(await response.read())
        return (time.process_time() - start) / calls


async def _httpx(url: str, calls: int) -> float:
    import httpx

    async with httpx.AsyncClient() as client:
        await client.post(url, content=BODY, headers=HEADERS)
        start = time.process_time()
        for _ in range(calls):
            (await client.post(url, content=BODY, headers=HEADERS)).json()
        return (time.process_time() - start) / calls


_LITELLM = """
import asyncio, json, os, resource, sys, time
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before, t = rss(), time.perf_counter()
import litellm
imported, grown = time.perf_counter() - t, rss() - before
async def main(base, calls):
    kw = dict(model="openai/bench-model", api_base=base, api_key="bench",
              messages=[{"role": "user", "content": "Hello"}])
    await litellm.acompletion(**kw)
    start = time.process_time()
    for _ in range(calls):
        await litellm.acompletion(**kw)
    return (time.process_time() - start) / calls
per_call = asyncio.run(main(sys.argv[1], int(sys.argv[2])))
print(json.dumps({"import_s": imported, "import_mb": grown, "cpu_per_call": per_call}))
"""


def _litellm(base: str, calls: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _LITELLM, base, str(calls)], capture_output=True, text=True, timeout=600, check=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--litellm-calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    root = Path(__file__).resolve().parents[1]
    upstream = subprocess.Popen([sys.executable, "-m", "bench.upstream", "--port", str(port)], cwd=root)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(upstream.pid, {1 % os.cpu_count()})  # type: ignore[operator]
        os.sched_setaffinity(0, {0})
    try:
        time.sleep(0.5)
        url = f"http://127.0.0.1:{port}{JSON_PATH}"
        rows: dict[str, list[float]] = {"aiohttp": [], "httpx": [], "litellm": []}
        imports: list[dict[str, float]] = []
        for _ in range(args.rounds):
            rows["aiohttp"].append(asyncio.run(_aiohttp(url, args.calls)))
            rows["httpx"].append(asyncio.run(_httpx(url, args.calls)))
            lite = _litellm(f"http://127.0.0.1:{port}/v1", args.litellm_calls)
            rows["litellm"].append(lite["cpu_per_call"])
            imports.append(lite)
    finally:
        upstream.terminate()
        upstream.wait()
    med = {name: statistics.median(values) * 1000 for name, values in rows.items()}
    print("client CPU per small chat call (ms, median of rounds; each round's values in brackets)")
    for name, values in rows.items():
        print(f"  {name:8} {med[name]:7.3f}  [{', '.join(f'{v * 1000:.3f}' for v in values)}]")
    print(
        f"  import litellm: {statistics.median(i['import_s'] for i in imports):.1f} s, "
        f"+{statistics.median(i['import_mb'] for i in imports):.0f} MB peak RSS"
    )
    print(f"  this process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    checks = {
        "aiohttp <= 0.5 x httpx": med["aiohttp"] <= 0.5 * med["httpx"],
        "litellm >= 5 x aiohttp": med["litellm"] >= 5 * med["aiohttp"],
    }
    for name, ok in checks.items():
        print(f"  target {name}: {'met' if ok else 'MISSED'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
