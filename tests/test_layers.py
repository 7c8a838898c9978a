"""The layers of DESIGN §5 as the client sees them: `pip install sluice` without the
server extra must be enough to talk to a server, so the client imports no server code,
and the `/v1` contract it shares with the API sits in the bottom layer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import sluice

PACKAGE = Path(sluice.__file__).parent
SERVER_MODULES = ("sluice.api", "sluice.engine", "sluice.store", "sluice.policy")
# The server extra's packages (pyproject.toml) and the store's driver.
SERVER_PACKAGES = ("litestar", "uvicorn", "asyncpg", "croniter", "prometheus_client", "sqlite3")
# What the contract may import: the bottom layer beside it, msgspec and the stdlib.
CONTRACT_IMPORTS = {"__future__", "typing", "msgspec", "model", "errors"}


def test_the_client_imports_no_server_code() -> None:
    code = (
        "import sys, sluice.client\n"
        "sluice.client.Client('http://127.0.0.1:1', 'sk_x').close()\n"
        f"server = {SERVER_MODULES!r}, {SERVER_PACKAGES!r}\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith(server[0])\n"
        "                        or m.split('.')[0] in server[1])))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.split()
    assert loaded == [], f"importing sluice.client loaded server code: {loaded}"


def _contract() -> list[ast.Module]:
    """The contract package's modules (one per noun)."""
    return [ast.parse(path.read_text()) for path in sorted((PACKAGE / "contract").glob("*.py"))]


def test_the_contract_imports_only_the_bottom_layer() -> None:
    imported = set()
    for tree in _contract():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level != 1:  # level 1: a sibling
                imported.add((node.module or "").split(".")[0])
    assert imported <= CONTRACT_IMPORTS, sorted(imported - CONTRACT_IMPORTS)


def test_the_client_reads_answers_with_the_contract_structs() -> None:
    """No copies: the client defines no Struct of the contract's (its keyword forms,
    TypedDicts such as ScheduleSpec for `schedules.set(**fields)`, are no bodies)."""
    bodies = {n.name for tree in _contract() for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    copies = set()
    for path in (PACKAGE / "client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and "Struct" in ast.unparse(node.bases[:1]):
                copies |= {node.name} & bodies
    assert not copies, sorted(copies)


# The layers of DESIGN §5, bottom to top: each imports only from the layers below it.
LAYERS = [
    ["sluice.model", "sluice.errors", "sluice.clock", "sluice.config", "sluice.protocol",
     "sluice.contract", "sluice.rawjson", "sluice.logs", "sluice.tracing", "sluice.otel"],
    ["sluice.policy"],
    ["sluice.store"],
    ["sluice.engine"],
    ["sluice.api", "sluice.dashboard"],
    ["sluice.worker", "sluice.client", "sluice.cli"],
]  # fmt: skip


def _modules(prefix: str) -> list[str]:
    """The modules of a package (or the module itself), as dotted names."""
    path = PACKAGE.parent / prefix.replace(".", "/")
    if path.with_suffix(".py").exists():
        return [prefix]
    return sorted(
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in path.rglob("*.py")
    )


def test_each_layer_imported_alone_pulls_in_nothing_above_it() -> None:
    for level, layer in enumerate(LAYERS[:-1]):
        above = [m for upper in LAYERS[level + 1 :] for m in upper]
        modules = [m for prefix in layer for m in _modules(prefix)]
        code = (
            "import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"above = {above!r}\n"
            "print('\\n'.join(sorted(m for m in sys.modules\n"
            "                        if any(m == a or m.startswith(a + '.') for a in above))))\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [], f"layer {layer} pulls in {done.stdout.split()}"


def test_every_error_derives_from_sluice_error_and_is_drawn_in_the_tree() -> None:
    import importlib

    from sluice import errors

    found = {}
    for prefix in (m for layer in LAYERS for m in layer):
        for name in _modules(prefix):
            module = importlib.import_module(name)
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, BaseException)
                    and value.__module__.startswith("sluice")
                ):
                    found[value.__name__] = value
    assert found, "no errors found: the walk is broken"
    tree = errors.__doc__ or ""
    for name, cls in sorted(found.items()):
        assert issubclass(cls, errors.SluiceError), name
        assert name == "SluiceError" or f"── {name} " in tree, f"{name} is not in the tree"


def test_the_public_names_load_from_where_they_live() -> None:
    code = (
        "import sys, sluice\n"
        "assert not any(m.startswith(('sluice.worker', 'sluice.client')) for m in sys.modules)\n"
        "assert sorted(sluice.__all__) == sorted(sluice._EXPORTS)\n"
        "print(' '.join(type(getattr(sluice, n)).__name__ for n in sluice.__all__))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == len(sluice.__all__)
