"""The README's quick start, run command by command from a fresh copy of the repository.

Every fenced ``sh`` or ``python`` block in the quick start runs, in order, from the copy's root,
against the demo that ``make run`` serves there (a block that is one ``make run ...`` line restarts
it with those arguments). What a block must print is written in the README itself, so the two
cannot drift: ``<!-- check: contains TEXT -->`` comments before the block, and a ``text`` block
right after it, whose lines must appear in the output (a line ending in ``...`` is a prefix).
``<!-- check: skip (why) -->`` marks a block that cannot run here, and says why.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fresh import ROOT, VENV, MakeRun, fresh_copy, make_run, user_env
from harness import free_port

SECTION = "## Quick start"
_FENCE = re.compile(r"^```(\w*)\s*$")
_CHECK = re.compile(r"^<!-- check: (.*) -->$")


@dataclass
class Block:
    line: int
    lang: str
    code: str
    checks: list[str] = field(default_factory=list)
    sample: str | None = None

    @property
    def skipped(self) -> bool:
        return any(c.startswith("skip") for c in self.checks)

    @property
    def starts_demo(self) -> list[str] | None:
        """``make run`` arguments when the block is one ``make run ...`` line."""
        lines = [ln.split("#")[0].strip() for ln in self.code.splitlines() if ln.split("#")[0].strip()]
        if len(lines) == 1 and lines[0].split()[:2] == ["make", "run"]:
            return lines[0].split()[2:]
        return None


def quick_start(text: str) -> list[Block]:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == SECTION)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks: list[Block] = []
    checks: list[str] = []
    i = start
    while i < end:
        line = lines[i]
        if m := _CHECK.match(line.strip()):
            checks.append(m.group(1))
        elif m := _FENCE.match(line):
            close = next(j for j in range(i + 1, end) if lines[j].startswith("```"))
            code = "\n".join(lines[i + 1 : close])
            if m.group(1) == "text" and blocks and not checks:
                blocks[-1].sample = code
            else:
                blocks.append(Block(i + 1, m.group(1), code, checks))
            checks, i = [], close
        elif line.strip():
            checks = []  # checks belong to the block right after them
        i += 1
    return blocks


BLOCKS = quick_start((ROOT / "README.md").read_text())


def test_every_quick_start_block_runs_or_says_why_not() -> None:
    assert len(BLOCKS) >= 8
    for block in BLOCKS:
        assert block.lang in ("sh", "python"), f"README.md:{block.line}: a {block.lang!r} block"
        if block.skipped:
            assert re.match(r"skip \(.+\)", block.checks[0]), f"README.md:{block.line}: a skip must say why"


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_copy(tmp_path_factory.mktemp("readme"))


@pytest.fixture(scope="module")
def demo(clone: Path) -> Iterator[list[MakeRun]]:
    """The running demo (a one-element list, so a block can replace it)."""
    running = [make_run(clone, free_port(), [], user_env())]
    yield running
    running[0].stop()


def _run(block: Block, clone: Path, port: int) -> str:
    code = block.code.replace("localhost:8080", f"localhost:{port}").replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    command = ["bash", "-euo", "pipefail", "-c", code]
    if block.lang == "python":
        command = [str(VENV / "bin" / "python"), "-c", code]
    env = user_env(PYTHONPATH=str(clone))
    result = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"README.md:{block.line} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _expect(block: Block, output: str) -> None:
    seen = [ln.strip().lower() for ln in output.splitlines()]
    for check in block.checks:
        want = check.removeprefix("contains ")
        assert want in output, f"README.md:{block.line}: the output lacks {want!r}:\n{output}"
    for line in filter(None, (ln.strip().lower() for ln in (block.sample or "").splitlines())):
        if line.endswith("..."):
            ok = any(s.startswith(line[:-3]) for s in seen)
        else:
            ok = line in seen
        assert ok, f"README.md:{block.line}: the sample line {line!r} is not in the output:\n{output}"


def test_the_quick_start_as_written(clone: Path, demo: list[MakeRun]) -> None:
    ran = 0
    for block in BLOCKS:
        if block.skipped:
            continue
        arguments = block.starts_demo
        if arguments is not None:
            demo[0].stop()
            demo[0] = make_run(clone, free_port(), arguments, user_env())
            continue
        _expect(block, _run(block, clone, int(demo[0].url.rsplit(":", 1)[1])))
        ran += 1
    assert ran >= 6
