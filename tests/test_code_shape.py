"""The shape of pipeline/, read from its source with `ast` (docs: ../shared/DESIGN.md, issue #10).

- no function longer than 80 lines;
- private names stay in their module: no `from X import _name` and no `X._name` across
  modules (a package may import its own private submodule), and no reaching into another
  object's private attributes, except Optuna's, in the one wrapper made for them;
- imports point down DESIGN.md's module table, and there is no import circle;
- stages return data: only the CLI imports `pipeline.console`, only the two of them use
  typer or rich, and `print` stays only where no caller could take the message.

Imports under `if TYPE_CHECKING:` are annotations only and do not count; imports inside
functions do.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PIPELINE = Path(__file__).resolve().parents[1] / "pipeline"
MAX_LINES = 80
OPTUNA_WRAPPER = "pipeline.tune.optuna_internals"
PUBLIC_UNDERSCORED = {"os._exit"}  # the standard library's, public despite the underscore

# DESIGN.md's module table, top to bottom: a module may import only modules on a lower row.
# Modules the table leaves out sit beside the stage they serve; the small shared records and
# helpers (trials, curves, provenance, files, errors) form the bottom row.
LAYERS = [
    ["pipeline.cli", "pipeline.__main__"],
    ["pipeline.console"],
    # the command stages that compose others: submit and show read the study (best trials)
    # and log to MLflow
    ["pipeline.submit", "pipeline.show",
     "pipeline.predict",  # `pipeline predict`: the registry's champion on raw rows
     "pipeline.blend",  # `pipeline blend`: submissions' OOF / test predictions, weighted
     "pipeline.drift",  # `pipeline drift`: adversarial validation of train vs test
     "pipeline.importance"],  # `pipeline importance`: a trial's fold models, columns shuffled
    ["pipeline.tune", "pipeline.train"],  # train: logged_cv, which each tune trial runs too
    ["pipeline.tracking"],
    ["pipeline.submission"],
    ["pipeline.evaluate", "pipeline.decision"],  # decision: chosen on OOF, used by submit
    ["pipeline.trials"],  # each complete trial's stored result: written by tune, read above
    ["pipeline.prepare", "pipeline.init",  # init: `pipeline init`, an experiment file inferred
     "pipeline.identity"],  # what a study measured: checked by tune, submit, show, blend
    ["pipeline.drawing"],  # a fitted network -> a matplotlib figure; imports no stage
    ["pipeline.experiment"],
    ["pipeline.experiment_tune"],  # the experiment file's [tune] section
    # pure functions that import nothing of ours: the experiment file checks a metric fits
    # its task against them, so they sit below it (DESIGN.md lists them above)
    ["pipeline.metrics"],
    ["pipeline.network"],
    ["pipeline.competitions"],
    ["pipeline.curves", "pipeline.provenance", "pipeline.files",
     "pipeline.errors", "pipeline.processes",
     "pipeline.toml_checks"],  # one TOML value checked, for every section of the file
]

# Known exceptions, each with its reason (none today).
PENDING: set[tuple[str, str, str]] = set()


# Where `print` may stay: no caller to return the message to, or the network's own output.
PRINTERS = {
    "pipeline.cli", "pipeline.console",
    "pipeline.tracking.runs",  # the writer process died: noticed mid-trial, maybe in a worker
    "pipeline.tracking.writer",  # the writer process itself
    "pipeline.tune.worker",  # spawned tune workers
    "pipeline.tune.study",  # inside Optuna's stale-trial callback
    "pipeline.network.training",  # verbose=True, as scikit-learn's MLP
    "pipeline.network.gradcheck",  # its own `python -m` main()
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PIPELINE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PIPELINE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def package_of(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def walk_runtime(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below `node`, skipping the bodies of `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for other in child.orelse:
                yield other
                yield from walk_runtime(other)
            continue
        yield child
        yield from walk_runtime(child)


def imports(module: str) -> Iterator[tuple[str, str | None, ast.AST]]:
    """(imported module, imported name or None, node) for every runtime pipeline import."""
    for node in walk_runtime(TREES[module]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pipeline":
                    yield alias.name, None, node
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                anchor = package_of(module).split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] == "pipeline":
                for alias in node.names:
                    yield base, alias.name, node


def target(base: str, name: str | None) -> str:
    """The module an import loads: `from pipeline.tune import study` is pipeline.tune.study."""
    return f"{base}.{name}" if name and f"{base}.{name}" in MODULES else base


def layer(module: str) -> int:
    for i, row in enumerate(LAYERS):
        if any(module == top or module.startswith(top + ".") for top in row):
            return i
    raise AssertionError(f"{module}: not placed in LAYERS (add it where DESIGN.md puts it)")


def top_level(module: str) -> str:
    return next(t for row in LAYERS for t in row if module == t or module.startswith(t + "."))


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def own_instances(tree: ast.AST) -> set[str]:
    """Names bound to `cls(...)` in a classmethod: objects the class just made itself, whose
    private attributes are its own business (building a fitted estimator from a file)."""
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and node.value.func.id == "cls"):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def findings() -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    for module, tree in TREES.items():
        owners = {"self", "cls"} | own_instances(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.end_lineno - node.lineno + 1 > MAX_LINES:
                    found.add(("long", module, node.name))
            if (isinstance(node, ast.Attribute) and private(node.attr)
                    and not (isinstance(node.value, ast.Name) and node.value.id in owners)
                    and module != OPTUNA_WRAPPER):
                text = f"{ast.unparse(node.value)}.{node.attr}"
                if text not in PUBLIC_UNDERSCORED:
                    found.add(("private attribute", module, text))
        for base, name, _ in imports(module):
            loaded = target(base, name)
            home = package_of(module)
            own_private_module = loaded != base and (home == base or home.startswith(base + "."))
            if name and private(name) and not own_private_module:
                found.add(("private import", module, f"{base}.{name}"))
    found |= {("import circle", circle.split(" ")[0], circle) for circle in import_circles()}
    return found


def test_short_functions_private_names_at_home_no_import_circle():
    found = findings()
    new, fixed = sorted(found - PENDING), sorted(PENDING - found)
    assert not new, "\n".join(map(str, new))
    assert not fixed, f"fixed now, delete from PENDING: {fixed}"


def test_imports_point_down_the_module_table():
    upward = []
    for module in TREES:
        for base, name, node in imports(module):
            loaded = target(base, name)
            if layer(loaded) < layer(module):  # peers on one row: the circle test covers them
                upward.append(f"{MODULES[module].name}:{node.lineno} {module} imports {loaded}")
    assert not upward, "\n".join(upward)


def import_circles() -> set[str]:
    """Every circle a depth-first walk of the import graph finds, as "a -> b -> a"."""
    graph = {m: sorted({target(b, n) for b, n, _ in imports(m)} - {m}) for m in TREES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in graph.get(module, ()):
            if state.get(nxt) == 1:
                loop = path[path.index(nxt):] if nxt in path else []
                loop = [*loop, module]
                start = loop.index(min(loop))  # one spelling per circle
                loop = loop[start:] + loop[:start]
                circles.add(" -> ".join([*loop, loop[0]]))
            elif nxt not in state:
                visit(nxt, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    return circles


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [("pipeline.tune", "pipeline.submit"), ("pipeline.tune", "pipeline.console"),
     ("pipeline.submission", "pipeline.tune")],
)
def test_stages_that_must_not_meet(importer, forbidden):
    found = [f"{m} imports {target(b, n)}" for m in TREES
             if m == importer or m.startswith(importer + ".")
             for b, n, _ in imports(m) if top_level(target(b, n)) == forbidden]
    assert not found, found


def test_only_the_cli_imports_the_console():
    found = [m for m in TREES if m not in ("pipeline.cli", "pipeline.console")
             for b, n, _ in imports(m) if target(b, n) == "pipeline.console"]
    assert not found, found


def test_stages_return_data_and_do_not_print():
    found = []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "print" and module not in PRINTERS):
                found.append(f"{module}:{node.lineno} print")
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            ui = [n for n in names if n.split(".")[0] in ("typer", "rich")]
            if ui and module not in ("pipeline.cli", "pipeline.console"):
                found.append(f"{module}:{node.lineno} imports {ui[0]}")
    assert not found, found


def test_the_cli_parses_and_renders_only():
    """No MLflow call, no registration logic and no broad `except` in the CLI: each command's
    stage returns what went wrong (e.g. `Submitted.warnings`) and the console says it."""
    tree = TREES["pipeline.cli"]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            caught = ast.unparse(node.type)
            if caught in ("Exception", "BaseException"):
                found.append(f"cli.py:{node.lineno} except {caught}")
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        found += [f"cli.py:{node.lineno} imports {n}" for n in names
                  if n.split(".")[0] == "mlflow" or n == "pipeline.tracking.registry"
                  and "log_and_register" in ast.unparse(node)]
    assert not found, found


# packages whose __init__ still holds logic, each with its reason
INIT_LOGIC = {
    "pipeline.network": "a lazy __getattr__ keeps `import pipeline.network` light",
}


def test_package_inits_only_re_export():
    found = []
    for module, path in MODULES.items():
        if path.name != "__init__.py" or module in INIT_LOGIC or module == "pipeline":
            continue
        for node in TREES[module].body:
            plain = (isinstance(node, ast.Import | ast.ImportFrom)
                     or isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                     or isinstance(node, ast.Assign)
                     and [ast.unparse(t) for t in node.targets] == ["__all__"])
            if not plain:
                found.append(f"{module}:{node.lineno} {type(node).__name__}")
    assert not found, found
