"""The package's layering, read from the import statements (ast), not from running them.

The engine follows the data: autograd -> functional -> nn -> optim -> models -> data ->
training -> viz. A module may import from its own layer or a lower one, never a higher
one; the instruments in `ack_numpy.lab` sit above the engine, and only the CLI sits
above them. A reader can therefore stop at any layer and it still makes sense.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ack_numpy"

# The first dotted part after `ack_numpy.` names the layer; a larger number is higher up.
LAYERS = {
    "autograd": 0,
    "gradcheck": 0,  # uses only Tensor
    "runtime": 0,  # process settings (threads, allocator): imports nothing of the package
    "assets": 0,  # files that come with the package
    "files": 0,      # uses nothing: quote_path and atomic_write, for every layer that names or writes files
    "functional": 1,
    "nn": 2,
    "optim": 3,
    "models": 4,
    "data": 5,
    "progress": 6,
    "runs": 6,
    "config": 6,
    "checkpoint": 6,
    "train": 6,
    "viz": 7,
    "lab": 8,
    "cli": 9,
    "__main__": 9,
}
ENGINE_TOP = LAYERS["viz"]


def module_name(path: Path) -> str:
    """`ack_numpy/functional/conv.py` -> `ack_numpy.functional.conv`."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every ack_numpy import in a file, at any depth."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            # `from . import functional as F` imports the submodule `functional`.
            found += [(node.lineno, base)] if node.module else [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name == "ack_numpy" or name.startswith("ack_numpy.")]


def layer_of(name: str) -> int | None:
    """The layer of `ack_numpy.X...`, or None for the package itself (its __init__, and
    names it defines such as `ack_numpy.__version__`)."""
    parts = name.split(".")
    is_module = len(parts) > 1 and ((PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").exists())
    return LAYERS[parts[1]] if is_module else None


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    unknown = {module_name(p).split(".")[1] for p in MODULES if module_name(p) != "ack_numpy"} - set(LAYERS)
    assert not unknown, f"give these modules a layer in LAYERS: {sorted(unknown)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_module_imports_a_higher_layer(path):
    here = layer_of(module_name(path))
    if here is None:  # ack_numpy/__init__.py re-exports the bottom layer only
        here = LAYERS["autograd"]
    bad = [(line, name) for line, name in imported_modules(path)
           if layer_of(name) is not None and layer_of(name) > here]
    assert not bad, f"{module_name(path)} (layer {here}) imports higher layers: {bad}"


def test_the_engine_never_imports_the_lab():
    engine = [p for p in MODULES if (layer_of(module_name(p)) or 0) <= ENGINE_TOP]
    assert len(engine) > 10
    bad = [(module_name(p), line, name) for p in engine for line, name in imported_modules(p)
           if name.startswith("ack_numpy.lab")]
    assert not bad, f"engine modules import the lab: {bad}"


def test_the_reader_of_imports_resolves_relative_imports():
    # The checker itself must see every spelling, or the rules above could never fail.
    conv = PACKAGE / "functional" / "conv.py"
    names = [name for _, name in imported_modules(conv)]
    assert "ack_numpy.autograd" in names and "ack_numpy.functional.im2col" in names
    probe = PACKAGE / "nn" / "__init__.py"
    assert "ack_numpy.nn.adaptive" in [name for _, name in imported_modules(probe)]


def test_the_cli_loads_the_lab_only_for_the_lab_commands():
    # train, evaluate, download, visualize and explore never load the instruments: the CLI
    # imports ack_numpy.lab only inside the functions of the commands that are the lab's.
    cli = PACKAGE / "cli.py"
    tree = ast.parse(cli.read_text(), filename=str(cli))
    lab_commands = {"cmd_reproduce", "cmd_bench"}
    importing = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("lab"):
                    importing.add(node.name)
    assert importing == lab_commands, f"functions of cli.py that import the lab: {sorted(importing)}"
    top_level = [node.module for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert top_level and not [m for m in top_level if (m or "").startswith("lab")], top_level


def test_the_tutorials_setup_never_imports_the_lab():
    # Every file of tutorials/ is read the same way in tests/test_notebooks.py
    # (test_no_tutorial_imports_the_lab_or_touches_the_allocator); this one names the setup module.
    setup = PACKAGE.parent / "tutorials" / "tutorial_setup.py"
    nodes = [n for n in ast.walk(ast.parse(setup.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [n.module or "" for n in nodes if isinstance(n, ast.ImportFrom)]
    names += [alias.name for n in nodes if isinstance(n, ast.Import) for alias in n.names]
    assert names and not [n for n in names if n.startswith("ack_numpy.lab")], names


def test_data_holds_records_only():
    # Code lives in the package, fixtures in tests/: data/ holds the outputs of commands.
    data = PACKAGE.parent / "data"
    code = sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.suffix in (".py", ".sh", ".ipynb"))
    assert not code, f"data/ holds code; move it into ack_numpy/lab/ or tests/: {code}"
