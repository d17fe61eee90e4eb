"""Values (gateway/values.py): frozen to the type checker, equal and hashable by fields at run time."""

from __future__ import annotations

from pathlib import Path

from mypy import api

from gateway.routing.snapshot import DeploymentState
from gateway.types import Usage


def test_values_compare_and_hash_by_fields() -> None:
    assert Usage(10, 5) == Usage(10, 5) and Usage(10, 5) != Usage(10, 6)
    assert len({Usage(10, 5), Usage(10, 5), Usage(1, 1)}) == 2
    assert {DeploymentState("open"): 1}[DeploymentState("open")] == 1


def test_assigning_a_field_does_not_type_check(tmp_path: Path) -> None:
    source = tmp_path / "assigns.py"
    source.write_text("from gateway.types import Usage\nu = Usage(1, 2)\nu.prompt = 3\n")
    out, _, status = api.run(["--strict", "--no-incremental", "--follow-imports=silent", str(source)])
    assert status == 1 and 'Cannot assign to final attribute "prompt"' in out, out
