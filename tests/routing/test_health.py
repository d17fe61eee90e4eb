"""The circuit breaker and averages of one replica, on a fake clock; merging is fed by hand."""

from __future__ import annotations

import pytest

from gateway.config.model import CircuitSettings
from gateway.routing.health import Delta, Health, RemoteState, ewma
from gateway.routing.snapshot import DeploymentState, Snapshot

DEP = "openai-main/gpt-4o-mini"
SETTINGS = CircuitSettings(
    failure_threshold=3, error_rate_threshold=0.5, min_requests=10, window_seconds=10.0, open_seconds=5.0
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> Health:
    return Health(SETTINGS, clock)


def outcome(health: Health, ok: bool, latency: float = 0.1, ttft: float | None = None, dep: str = DEP) -> None:
    health.started(dep)
    health.finished(dep, ok, latency, ttft)


def state(health: Health, dep: str = DEP) -> DeploymentState:
    return health.snapshot().state(dep)


def open_circuit(health: Health) -> None:
    for _ in range(SETTINGS.failure_threshold):
        outcome(health, False)
    assert state(health).circuit == "open"


def test_opens_after_consecutive_failures_and_a_success_resets_the_count(health: Health) -> None:
    for ok in (False, False, True, False, False):
        outcome(health, ok)
        assert health.allow(DEP)
    outcome(health, False)
    assert state(health).circuit == "open"
    assert not health.allow(DEP)


def test_error_rate_opens_only_once_the_window_has_min_requests(health: Health) -> None:
    for _ in range(4):  # 8 attempts at 50% stay below both rules; then 60% of 10 opens
        outcome(health, True)
        outcome(health, False)
        assert state(health).circuit == "closed"
    outcome(health, False)
    assert state(health).circuit == "closed"  # 9 attempts: too few, however bad
    outcome(health, True)
    assert state(health).circuit == "closed"  # 10 attempts, 50%: not above the threshold
    outcome(health, False)
    assert state(health).circuit == "open"
    assert state(health).error_rate == pytest.approx(6 / 11)


def test_the_window_forgets_old_attempts(health: Health, clock: Clock) -> None:
    for ok in (True, False) * 4:
        outcome(health, ok)
    clock.now += 15.0  # half of the previous window still counts
    assert state(health).error_rate == pytest.approx(0.5)
    clock.now += 10.0
    assert state(health).error_rate == 0.0
    for ok in (True, False) * 2 + (False,):  # 5 attempts now: the old ones would have made min_requests
        outcome(health, ok)
    assert state(health).circuit == "closed"


def test_open_half_opens_after_open_seconds_with_probe_permits(health: Health, clock: Clock) -> None:
    open_circuit(health)
    clock.now += 2.0
    assert state(health).retry_in == pytest.approx(3.0)
    clock.now += 3.0
    assert state(health) == DeploymentState(circuit="half_open", error_rate=1.0)
    assert [health.allow(DEP) for _ in range(3)] == [True, True, False]
    clock.now += SETTINGS.open_seconds  # the probes never reported: new ones may go
    assert [health.allow(DEP) for _ in range(3)] == [True, True, False]


def test_probe_success_closes_and_forgets_the_failures(health: Health, clock: Clock) -> None:
    open_circuit(health)
    clock.now += 5.0
    assert health.allow(DEP)
    outcome(health, True)
    assert state(health) == DeploymentState(circuit="closed", latency_ms=100.0)
    outcome(health, False)
    outcome(health, False)
    assert state(health).circuit == "closed"  # the old failures do not count towards the threshold


def test_probe_failure_reopens_for_another_period(health: Health, clock: Clock) -> None:
    open_circuit(health)
    clock.now += 6.0
    assert health.allow(DEP)
    outcome(health, False)
    assert (state(health).circuit, state(health).retry_in) == ("open", 5.0)
    assert not health.allow(DEP)


def test_a_last_resort_goes_through_an_open_circuit_without_changing_it(health: Health, clock: Clock) -> None:
    open_circuit(health)
    clock.now += 1.0
    assert not health.allow(DEP)
    assert health.allow(DEP, last_resort=True)
    outcome(health, True)
    assert (state(health).circuit, state(health).retry_in) == ("open", 4.0)  # its probes decide, as in Redis
    clock.now += 4.0
    assert [health.allow(DEP) for _ in range(3)] == [True, True, False]
    assert health.allow(DEP, last_resort=True)  # half-open, its probes taken: still a last resort


def test_every_transition_is_reported(clock: Clock) -> None:
    seen: list[tuple[str, str]] = []
    health = Health(SETTINGS, clock, on_change=lambda deployment, circuit: seen.append((deployment, circuit)))
    open_circuit(health)
    clock.now += 5.0
    assert state(health).circuit == "half_open"
    assert health.allow(DEP)
    outcome(health, False)  # the probe failed
    clock.now += 5.0
    health.allow(DEP)
    outcome(health, True)
    health.merge({"b/m": RemoteState(circuit="open", retry_in=3.0)})
    health.merge({})
    assert seen == [
        (DEP, "open"),
        (DEP, "half_open"),
        (DEP, "open"),
        (DEP, "half_open"),
        (DEP, "closed"),
        ("b/m", "open"),
        ("b/m", "closed"),
    ]


def test_ewma_of_latency_and_ttft_from_successes(health: Health) -> None:
    outcome(health, True, latency=1.0, ttft=0.2)
    outcome(health, True, latency=2.0)  # not a stream: no ttft sample
    outcome(health, False, latency=30.0, ttft=0.0)  # a timeout says nothing about speed
    outcome(health, True, latency=0.5, ttft=0.4)
    assert state(health).latency_ms == pytest.approx(ewma(ewma(1000.0, 2000.0, 0.2), 500.0, 0.2))
    assert state(health).ttft_ms == pytest.approx(200.0 + 0.2 * (400.0 - 200.0))
    assert ewma(None, 7.0, 0.5) == 7.0


def test_inflight_counts_started_minus_finished(health: Health) -> None:
    for _ in range(3):
        health.started(DEP)
    health.finished(DEP, True, 0.1, None)
    assert state(health).inflight == 2
    for _ in range(4):
        health.finished(DEP, True, 0.1, None)
    assert state(health).inflight == 0  # never negative


def test_snapshot_shape(health: Health) -> None:
    assert health.snapshot() == Snapshot({})
    outcome(health, True, latency=0.25, ttft=0.05)
    outcome(health, True, dep="b/m", latency=0.5)
    snap = health.snapshot()
    assert isinstance(snap, Snapshot) and set(snap.deployments) == {DEP, "b/m"}
    assert snap.state(DEP) == DeploymentState("closed", 0.0, 0, 50.0, 250.0, None, 0.0)
    assert snap.state("unknown/x") == DeploymentState()
    assert health.snapshot().state(DEP) is snap.state(DEP)  # unchanged: not rebuilt
    health.started(DEP)
    assert health.snapshot().state(DEP).inflight == 1


def test_deltas_carry_outcomes_once(health: Health) -> None:
    outcome(health, True, latency=0.2, ttft=0.1)
    outcome(health, False)
    outcome(health, False)
    health.started(DEP)
    assert health.deltas() == {
        DEP: Delta(
            successes=1, failures=2, trailing_failures=2, reset=True, latency_ms_sum=200.0, latency_count=1,
            ttft_ms_sum=100.0, ttft_count=1, inflight=1,
        )
    }  # fmt: skip
    assert health.deltas() == {DEP: Delta(inflight=1)}  # in-flight is a level: sent while non-zero
    health.finished(DEP, False, 0.1, None)
    assert health.deltas() == {DEP: Delta(failures=1, trailing_failures=1, event="open")}  # 3rd in a row
    assert health.deltas() == {}


def test_merge_takes_the_fleets_circuit_and_counts(health: Health, clock: Clock) -> None:
    remote = RemoteState(circuit="open", retry_in=2.0, attempts=8, failures=4, consecutive=2)
    health.merge({DEP: remote}, replicas=2)
    assert state(health) == DeploymentState(circuit="open", retry_in=2.0, error_rate=0.5)
    clock.now += 2.0
    assert state(health).circuit == "half_open"
    assert health.allow(DEP)  # ceil(2 probes / 2 replicas) = 1 here
    health.merge({DEP: RemoteState(circuit="half_open")}, replicas=2)  # does not grant new permits
    assert not health.allow(DEP)
    health.merge({})  # closed by a probe elsewhere, and then forgotten
    assert state(health).circuit == "closed" and health.allow(DEP)
    health.merge({DEP: RemoteState(consecutive=2, attempts=2, failures=2)})
    outcome(health, False)  # the fleet's two and this one
    assert state(health).circuit == "open"


def test_a_transition_not_yet_sent_wins_over_the_merged_view(health: Health) -> None:
    open_circuit(health)
    health.merge({DEP: RemoteState()})  # an answer to a sync that did not carry the opening
    assert state(health).circuit == "open"
    sent = health.deltas()
    assert sent[DEP].event == "open"
    health.merge({DEP: RemoteState()})
    assert state(health).circuit == "closed"  # the fleet's word once the event was sent


def test_inflight_adds_the_other_replicas(health: Health) -> None:
    health.started(DEP)
    health.deltas()  # sends 1
    health.started(DEP)
    health.merge({DEP: RemoteState(inflight=5)})  # 1 of them ours
    assert state(health).inflight == 6
    health.detach()
    assert state(health).inflight == 2


def test_detached_decides_on_the_local_window_and_restores_events(health: Health) -> None:
    health.merge({DEP: RemoteState(attempts=100, failures=0)})
    outcome(health, False)
    outcome(health, True)
    assert state(health).error_rate == pytest.approx(1 / 102)
    health.deltas()
    assert state(health).error_rate == pytest.approx(1 / 102)  # while the sync runs, too
    health.detach()
    assert state(health).error_rate == pytest.approx(1 / 2)
    open_circuit(health)
    lost = health.deltas()
    health.restore(lost)
    assert health.deltas()[DEP] == Delta(event="open")  # counts dropped, the event kept
