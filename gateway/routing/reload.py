"""The policy in force, and replacing it safely while requests run.

A new version is loaded and validated completely before it replaces the old one in a single
assignment, so a request (which reads ``store.current`` once) sees wholly the old or wholly the new
policy. An invalid version is refused with its ``file:line`` errors, the old one keeps serving, and
the refusal shows in ``/admin/policies``, a log line and ``gateway_policy_reloads_total``.
Reloads happen on a change of the directory's files (polled), on SIGHUP and on
``POST /admin/policies/reload``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.config.model import Deployment
from gateway.metrics import Metrics
from gateway.routing.policy import Policy
from gateway.routing.policy_load import PolicyError, load_policies, policy_files


@dataclass(frozen=True)
class Rejection:
    at: float  # wall-clock time
    reason: str
    errors: tuple[str, ...]


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
        loader: Callable[[str, Mapping[str, Deployment]], Policy] = load_policies,
    ) -> None:
        self.directory = directory
        self._deployments = deployments
        self._metrics = metrics
        self._log = log
        self._loader = loader
        self._seen = fingerprint(directory)
        self.current: Policy = loader(directory, deployments)  # invalid at start: the caller refuses to start
        self.loaded_at = time.time()
        self.last_rejection: Rejection | None = None
        self._task: asyncio.Task[None] | None = None
        metrics.policy_info.labels(self.current.version).set(1)

    def reload(self, reason: str) -> Rejection | None:
        """Load, validate and swap; returns the rejection when the new files are invalid."""
        self._seen = fingerprint(self.directory)
        try:
            policy = self._loader(self.directory, self._deployments)
        except PolicyError as e:
            rejection = Rejection(time.time(), reason, tuple(e.errors))
            self.last_rejection = rejection
            self._metrics.policy_reloads.labels("rejected").inc()
            self._log.error(
                "policy reload rejected", {"reason": reason, "errors": list(e.errors), "serving": self.current.version}
            )
            return rejection
        if policy.version != self.current.version:
            self._metrics.policy_info.labels(self.current.version).set(0)
            self._metrics.policy_info.labels(policy.version).set(1)
        old, self.current = self.current, policy
        self.loaded_at = time.time()
        self.last_rejection = None
        self._metrics.policy_reloads.labels("applied").inc()
        self._log.warning("policy reloaded", {"reason": reason, "from": old.version, "to": policy.version})
        return None

    async def start(self, poll_interval: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self.reload, "SIGHUP")
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP here
            pass
        self._task = asyncio.create_task(self._watch(poll_interval))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self, interval: float, settle: float = 0.2) -> None:
        while True:
            await asyncio.sleep(interval)
            changed = fingerprint(self.directory)
            if changed == self._seen:
                continue
            # An editor or a copy may still be writing: reload once the files have stopped changing,
            # so a half-written file that happens to parse never replaces the policy.
            await asyncio.sleep(settle)
            if fingerprint(self.directory) == changed:
                self.reload("file change")
