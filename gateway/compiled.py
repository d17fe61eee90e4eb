"""The request path's and the simulator's modules as mypyc compiled them, used only when built from these sources.

mypyc turns type-annotated modules into C extensions: the same code, with its calls, attribute reads and
arithmetic made in C, about twice as fast here (README, Speed). ``scripts/compile`` (run by ``make run`` and
``make test``) builds ``MODULES`` into ``build/mypyc`` with a manifest of their sources' hashes. Extension
modules beside the sources would shadow them, so an edit would silently run the old code; kept apart, they
are loaded by a finder only while every source still matches its hash, and then all of them or none (compiled
modules call each other's functions directly: a compiled caller and an interpreted callee would hold two
copies of one class). ``GATEWAY_PURE_PYTHON=1`` runs the sources whatever is built.

Modules outside the list are reached from compiled code by ordinary lookups (their attributes, their
functions), so an edit there takes effect either way. Within the list, a module constant declared ``Final`` is
read as a constant (the hot ones are, for speed): rebinding it at run time reaches no compiled reader.

Classes in these modules become native classes, with three differences the rest of the code keeps to: a
class attribute named like a field is the field's descriptor, not its default (defaults other code takes are
module constants: ``config.model.MAX_N``); an instance has no ``__dict__`` (``dataclasses.asdict``, not
``vars``); and a field refuses a value of another type than it declares (a ``Path`` for a ``str``).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

# The modules every simulated and served request runs through, and those whose classes it reads (the
# configuration, the workload, the values it makes: gateway/values.py), in dependency order. A module joins
# this list when mypyc compiles it unchanged in behaviour (the simulator's reports stay byte-identical) and
# the suite passes with it compiled. What mypyc cannot compile stays out: classes over ones with ``__slots__``
# (asyncio's handles: gateway.sim.handles), runtime-checkable protocols (gateway.limits.base), dataclasses
# whose ``init=False`` fields read class defaults (gateway.record), async generators (gateway.exchange),
# classes that interpreted code subclasses (gateway.providers.base) and subclasses of library classes whose
# methods they override (gateway.accesslog's logger, gateway.app's Starlette).
MODULES = (
    "gateway.types",
    "gateway.config.model",
    "gateway.time_limit",
    "gateway.tokens",
    "gateway.limits.model",
    "gateway.limits.specs",
    "gateway.limits.decide",
    "gateway.limits.local",
    "gateway.fake.ratelimit",
    "gateway.providers.openai_compat",
    "gateway.spend.pricing",
    "gateway.routing.policy.conditions",
    "gateway.routing.policy.model",
    "gateway.routing.snapshot",
    "gateway.routing.features",
    "gateway.routing.bounds",
    "gateway.routing.outcomes",
    "gateway.routing.health",
    "gateway.routing.steps",
    "gateway.routing.select",
    "gateway.routing.admission",
    "gateway.routing.walk",
    "gateway.metrics",
    "gateway.auth",
    "gateway.spend.ledger",
    "gateway.spend.books",
    "gateway.routing.decision",
    "gateway.routing.resolve",
    "gateway.routing.sending",
    "gateway.upstream",
    "gateway.api.disconnect",
    "gateway.api.intake",
    "gateway.api.respond",
    "gateway.api.stream",
    "gateway.api.proxy",
    "gateway.sim.clock",
    "gateway.sim.trace",
    "gateway.sim.providers",
    "gateway.sim.distributions",
    "gateway.sim.arrivals",
    "gateway.sim.workload",
    "gateway.sim.tally",
    "gateway.sim.watch",
    "gateway.sim.client",
    "gateway.sim.run",
)

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "mypyc"
MANIFEST = "manifest.json"
PURE_PYTHON = "GATEWAY_PURE_PYTHON"

# What this process runs: "compiled: N modules by mypyc" or "pure Python: why"; the gateway's start event and
# the simulator's report say it.
status = "pure Python: not set up"


def source(module: str, root: Path = ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def digest(modules: Sequence[str] = MODULES, root: Path = ROOT) -> str:
    """One hash over the modules' names and sources: the manifest's, and the build's freshness test."""
    h = hashlib.sha256()
    for module in modules:
        h.update(module.encode() + b"\0" + source(module, root).read_bytes() + b"\0")
    return h.hexdigest()


def runtime() -> str:
    """What an extension module is built for: this interpreter and its ABI."""
    return f"{sys.implementation.cache_tag} {importlib.machinery.EXTENSION_SUFFIXES[0]}"


class _Finder:
    """Finds the listed modules (and mypyc's shared library) among the built files, before the sources."""

    def __init__(self, files: dict[str, Path]) -> None:
        self._files = files

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        file = self._files.get(name)
        return None if file is None else importlib.util.spec_from_file_location(name, file)


def usable(build: Path = BUILD) -> dict[str, Path] | str:
    """The built files by module name, or why they cannot be used: the one freshness test, for the finder here
    and for ``scripts/compile`` (which builds when this says why not)."""
    try:
        manifest = json.loads((build / MANIFEST).read_text())
    except FileNotFoundError:
        return "not compiled (make compiled)"
    except (OSError, ValueError) as exc:
        return f"unreadable {build / MANIFEST}: {exc}"
    if manifest.get("runtime") != runtime():
        return f"built for {manifest.get('runtime')}, this is {runtime()} (make compiled)"
    if manifest.get("modules") != list(MODULES):
        return "built from another list of modules (make compiled)"
    try:
        if manifest.get("digest") != digest():
            return "sources changed since the build (make compiled)"
    except OSError as exc:
        return f"a compiled module's source is missing: {exc}"
    files = {name: build / file for name, file in manifest.get("files", {}).items()}
    if missing := [name for name, file in files.items() if not file.is_file()]:
        return f"built files missing: {', '.join(missing)} (make compiled)"
    return files


def install(build: Path = BUILD, environ: Mapping[str, str] = os.environ) -> str:
    """Put the finder in front of the sources if the build is usable; the status either way."""
    global status
    if environ.get(PURE_PYTHON, "") not in ("", "0"):
        status = f"pure Python: {PURE_PYTHON} is set"
    elif isinstance(found := usable(build), str):
        status = f"pure Python: {found}"
    elif already := [name for name in found if name in sys.modules]:
        status = f"pure Python: {', '.join(already)} imported before the build could be used"
    else:
        sys.meta_path.insert(0, _Finder(found))
        status = f"compiled: {len(MODULES)} modules by mypyc"
    return status
