"""The policy in force, and replacing it safely while requests run.

A new version is loaded and validated completely before it replaces the old one in a single
assignment on the event loop, so a request (which reads ``store.current`` once) sees wholly the old
or wholly the new policy. Loading runs in a worker thread (a 1 MB policy takes over a second to
check), one reload at a time; a load that finishes after a newer one was applied is dropped.

An invalid version is refused with its ``file:line`` errors, the old one keeps serving, and the
refusal shows in ``/admin/policies``, a log line and ``gateway_policy_reloads_total``. So is any
unexpected failure of a reload, and a directory that vanished or holds no file declaring ``routes:``
(``routes: {}`` is the explicit empty policy). Reloads happen on a change of the directory's files
(polled; the watcher survives any error), on SIGHUP and on ``POST /admin/policies/reload``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.config.model import POLICY_MAX_BYTES, Deployment
from gateway.metrics import Metrics
from gateway.routing.policy import Policy
from gateway.routing.policy.files import policy_files
from gateway.routing.policy_load import PolicyError, load_policies


@dataclass(frozen=True)
class Rejection:
    at: float  # wall-clock time
    reason: str
    errors: tuple[str, ...]


class Loader(Protocol):
    def __call__(
        self, directory: str, deployments: Mapping[str, Deployment], *, max_bytes: int, require_routes: bool
    ) -> Policy: ...


def fingerprint(directory: str) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the policy files: cheap to poll, changes on any edit."""
    out = []
    for name in policy_files(directory):
        try:
            st = os.stat(os.path.join(directory, name))
        except OSError:
            continue
        out.append((name, st.st_size, st.st_mtime_ns))
    return tuple(out)


class PolicyStore:
    def __init__(
        self,
        directory: str,
        deployments: Mapping[str, Deployment],
        metrics: Metrics,
        log: logging.Logger,
        *,
        max_bytes: int = POLICY_MAX_BYTES,
        loader: Loader = load_policies,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._deployments = deployments
        self._metrics = metrics
        self._log = log
        self._loader = loader
        self._seen = fingerprint(directory)
        # At start an absent directory is the empty policy; invalid files: the caller refuses to start.
        self.current: Policy = loader(directory, deployments, max_bytes=max_bytes, require_routes=False)
        self.loaded_at = time.time()
        self.last_rejection: Rejection | None = None
        self._lock = asyncio.Lock()  # one load at a time, so they apply in the order they read the files
        self._tasks: set[asyncio.Task[Any]] = set()
        metrics.policy_info.labels(self.current.version).set(1)

    async def refresh(self, reason: str) -> Rejection | None:
        """Load and validate in a worker thread, swap on the loop; the rejection when refused."""
        async with self._lock:
            self._seen = fingerprint(self.directory)
            outcome = await asyncio.to_thread(self._load)
            return self._finish(reason, outcome)

    async def start(self, poll_interval: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._spawn, "SIGHUP")
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP here
            pass
        self._spawn_task(self._watch(poll_interval))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, reason: str) -> None:
        self._spawn_task(self.refresh(reason))

    def _spawn_task(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _load(self) -> Policy | Exception:
        try:
            return self._loader(self.directory, self._deployments, max_bytes=self.max_bytes, require_routes=True)
        except Exception as e:  # a refusal, or a bug: either way the policy in force keeps serving
            return e

    def _finish(self, reason: str, outcome: Policy | Exception) -> Rejection | None:
        if isinstance(outcome, Exception):
            return self._reject(reason, outcome)
        policy = outcome
        if policy.version != self.current.version:
            self._metrics.policy_info.labels(self.current.version).set(0)
            self._metrics.policy_info.labels(policy.version).set(1)
        old, self.current = self.current, policy
        self.loaded_at = time.time()
        self.last_rejection = None
        self._metrics.policy_reloads.labels("applied").inc()
        fields = {"event": "policy_reloaded", "reason": reason, "from": old.version, "to": policy.version}
        self._log.info("policy reloaded", fields)
        return None

    def _reject(self, reason: str, error: Exception) -> Rejection:
        if isinstance(error, PolicyError):
            errors = tuple(error.errors)
        else:
            errors = (f"{self.directory}: the reload failed: {type(error).__name__}: {error}",)
        rejection = Rejection(time.time(), reason, errors)
        self.last_rejection = rejection
        self._metrics.policy_reloads.labels("rejected").inc()
        fields = {"event": "policy_rejected", "reason": reason, "errors": list(errors), "serving": self.current.version}
        self._log.error("policy reload rejected", fields)
        return rejection

    async def _watch(self, interval: float, settle: float = 0.2) -> None:
        failing = ""  # the error of the last turn, so a lasting one (an unreadable directory) is logged once
        while True:
            await asyncio.sleep(interval)
            try:
                changed = fingerprint(self.directory)
                if changed != self._seen:
                    # An editor or a copy may still be writing: reload once the files have stopped changing,
                    # so a half-written file that happens to parse never replaces the policy.
                    await asyncio.sleep(settle)
                    if fingerprint(self.directory) == changed:
                        await self.refresh("file change")
                failing = ""
            except Exception as e:  # whatever happened, keep watching
                if repr(e) != failing:
                    failing = repr(e)
                    self._reject("file change", e)
