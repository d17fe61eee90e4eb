"""A fresh copy of the repository, and the README's first command run from its root as a user would.

The copy holds the files git tracks (as they are in the working tree, so uncommitted edits are
tested too), with their modification times, so `make` sees the same state a new clone would. The
project's virtualenv stands in for the one `make run` would create (installing it again would
download every dependency): the install step is still `make test`'s, which runs in CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
BUILD = Path("build", "mypyc")
# Variables that would turn the demo into a real deployment.
PROVIDER_VARS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GROQ_API_KEY",
    "GEMINI_API_KEY",
    "GATEWAY_CONFIG",
    "GATEWAY_KEY",
    "GATEWAY_POLICY_DIR",
    "REDIS_URL",
)


def fresh_copy(destination: Path) -> Path:
    """The tracked files of this checkout under ``destination`` (what ``git clone`` of it would hold)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if not source.exists():  # deleted in the working tree, not yet committed
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    (destination / ".venv").symlink_to(VENV)  # what `make run` would have created there
    # And the compiled modules it would have built (a minute or two of `make compiled`): the copy's sources are
    # this checkout's, so its build matches them (gateway.compiled checks).
    if (ROOT / BUILD).is_dir():
        shutil.copytree(ROOT / BUILD, destination / BUILD, symlinks=True)
    return destination


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user with no provider keys, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if k not in PROVIDER_VARS} | extra


@dataclass
class MakeRun:
    """``make run`` (with the given make arguments) running in ``root``, on ``port``."""

    proc: subprocess.Popen[str]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        """The output once it holds ``text`` (access lines are written by a thread, after the answer)."""
        deadline = time.monotonic() + timeout
        while text not in (found := self.output()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # Ctrl-C reaches the whole group the same way
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def make_run(root: Path, port: int, arguments: list[str], env: dict[str, str]) -> MakeRun:
    """Start ``make run <arguments>`` in ``root`` and wait until it is ready.

    Only what a test must change is added: the port, ``-o`` so make does not install into the
    virtualenv again, and ``PYTHONPATH`` so the copy's own code is the code that runs.
    """
    log = root / f"make-run-{port}.log"
    command = ["make", "-o", ".venv/bin/.installed", "run", *arguments]
    environment = {**env, "GATEWAY_PORT": str(port), "PYTHONPATH": str(root)}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=root, env=environment, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
    running = MakeRun(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`make run` exited with {proc.returncode}:\n{running.output()}")
        try:
            if httpx.get(f"{running.url}/readyz", timeout=0.5).status_code == 200:
                return running
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    running.stop()
    raise RuntimeError(f"`make run` was not ready within 30 s:\n{running.output()}")
