"""The mypyc build (gateway/compiled.py, scripts/compile): what ships runs compiled, a stale build never runs,
and the compiled code gives the simulator's very answers.

Each scenario runs in its own interpreter: the finder is process-wide and a module, once imported, stays.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import gateway.routing.walk
from gateway import compiled
from gateway.limits.model import BucketSpec

ROOT = Path(__file__).resolve().parents[1]

# Sets up the finder with a given build directory (the gateway's own import sets up none: PURE_PYTHON) and
# says what it decided and where the walk was loaded from.
PROBE = """
import json, sys
from pathlib import Path
import gateway.compiled as c
status = c.install(Path(sys.argv[1]), {})
import gateway.routing.walk as walk
print(json.dumps({"status": status, "walk": walk.__file__}))
"""


def probe(build: Path) -> dict[str, str]:
    env = {**os.environ, compiled.PURE_PYTHON: "1"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(build)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, str] = json.loads(done.stdout)
    return answer


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A copy of the build that `make test` made, to spoil."""
    if not compiled.status.startswith("compiled"):
        pytest.fail(f"the suite runs what ships, compiled; this run is {compiled.status}")
    return Path(shutil.copytree(compiled.BUILD, tmp_path / "mypyc"))


def rewrite(build: Path, **changes: Any) -> None:
    manifest = build / compiled.MANIFEST
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), **changes}))


def test_the_suite_runs_the_compiled_modules() -> None:
    assert compiled.status == f"compiled: {len(compiled.MODULES)} modules by mypyc"
    assert Path(gateway.routing.walk.__file__).is_relative_to(compiled.BUILD)
    assert Path(gateway.routing.walk.__file__).suffix == ".so"


def test_the_values_a_request_makes_are_native_and_frozen_in_the_build() -> None:
    # Native: fields in C, no instance dict (gateway/values.py); frozen: a field refuses assignment at run
    # time too, and equal values hash alike.
    spec = BucketSpec("acct:a:rpm", 60.0, 1.0, 1.0, "requests")
    assert not hasattr(spec, "__dict__") and type(spec).__module__ == "gateway.limits.model"
    with pytest.raises(AttributeError):
        spec.cost = 2.0  # type: ignore[misc]
    assert spec == BucketSpec("acct:a:rpm", 60.0, 1.0, 1.0, "requests") and len({spec, replace(spec)}) == 1
    with pytest.raises(ValueError, match="invalid bucket"):  # its check runs in the written-out __init__
        BucketSpec("acct:a:rpm", 0.0, 1.0, 1.0, "requests")


def test_a_build_that_matches_the_sources_is_loaded_from_where_it_was_built(build: Path) -> None:
    found = probe(build)
    assert found["status"] == f"compiled: {len(compiled.MODULES)} modules by mypyc"
    assert Path(found["walk"]).is_relative_to(build)


def test_a_build_from_other_sources_is_not_used(build: Path) -> None:
    rewrite(build, digest="0" * 64)  # what an edit after the build looks like
    found = probe(build)
    assert found == {"status": "pure Python: sources changed since the build (make compiled)", "walk": found["walk"]}
    assert Path(found["walk"]) == ROOT / "gateway" / "routing" / "walk.py"


def test_a_build_for_another_interpreter_or_with_a_file_gone_is_not_used(build: Path) -> None:
    rewrite(build, runtime="cpython-312 .cpython-312-x86_64-linux-gnu.so")
    assert probe(build)["status"].startswith("pure Python: built for cpython-312")
    rewrite(build, runtime=compiled.runtime())
    next(build.glob("gateway/routing/walk.*")).unlink()
    found = probe(build)
    assert found["status"] == "pure Python: built files missing: gateway.routing.walk (make compiled)"
    assert found["walk"].endswith("walk.py")
    shutil.rmtree(build)
    assert probe(build)["status"] == "pure Python: not compiled (make compiled)"


def test_pure_python_on_request() -> None:
    env = {**os.environ, compiled.PURE_PYTHON: "1"}
    code = "import gateway.compiled as c, gateway.routing.walk as w; print(c.status); print(w.__file__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    walk = str(ROOT / "gateway" / "routing" / "walk.py")
    assert done.stdout.splitlines() == ["pure Python: GATEWAY_PURE_PYTHON is set", walk]


def simulate(tmp_path: Path, name: str, pure: bool) -> dict[str, Any]:
    out = tmp_path / f"{name}.json"
    env = {**os.environ, compiled.PURE_PYTHON: "1" if pure else ""}
    command = [sys.executable, "-m", "gateway", "simulate", "--config", "config/plan/fleet.yaml"]
    command += ["--workload", "config/plan/groq-outage.yaml", "--duration", "400", "--no-search", "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=100)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def test_the_compiled_simulator_reports_what_the_sources_do(tmp_path: Path) -> None:
    """Same draws, same arithmetic, same report: mypyc changes how fast the code runs, not what it computes
    (a float annotation made an int a float once; the report writes whole numbers as whole numbers)."""
    fast, slow = simulate(tmp_path, "compiled", pure=False), simulate(tmp_path, "pure", pure=True)
    assert fast.pop("code").startswith("compiled") and slow.pop("code").startswith("pure Python")
    for report in (fast, slow):
        for key in ("wall_seconds", "cpu_seconds"):
            report.pop(key)
    assert fast["requests_simulated"] > 2_000 and fast["fallbacks"]
    assert fast == slow


def test_the_build_step_does_nothing_while_the_build_is_fresh() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compile")], capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
