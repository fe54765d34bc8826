"""The architecture as a test: dgf_core's subsystems form layers, each module imports only from its own layer or
lower ones (so there are no import cycles between subsystems), nothing in dgf_core imports a UI, and every
package says what it owns."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "dgf_core"
LAYERS = [
    {"latent", "images", "data"},
    {"models"},
    {"checkpoint", "official"},
    {"generation"},
    {"faces"},
    {"training"},
    {"evaluation"},
    {"serving"},
    {"cli"},
    {"__main__"},
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
UI_MODULES = {"app", "ui", "gradio", "streamlit", "streamlit_shared", "pages"}


def modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG.parent).with_suffix("")
        out[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = p
    return out


def imports_of(module: str, path: Path) -> list[str]:
    """Every module this one imports (module level and inside functions), absolute names."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(target)
            found += [f"{target}.{a.name}" for a in node.names]  # `from . import registry` names a module
    return found


def subsystem(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "dgf_core" and len(parts) > 1 else None


def test_every_subsystem_has_a_layer():
    names = {subsystem(m) for m in modules()} - {None}
    assert names <= set(RANK), f"modules outside the layer table: {sorted(names - set(RANK))}"


def test_imports_go_down_the_layers_only():
    mods = modules()
    bad = []
    for mod, path in mods.items():
        own = subsystem(mod)
        if own is None:
            continue
        for target in imports_of(mod, path):
            other = subsystem(target)
            if target in mods and other is not None and RANK[other] > RANK[own]:
                bad.append(f"{mod} imports {target} ({other} is above {own})")
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_modules():
    mods = modules()
    graph = {m: {t for t in imports_of(m, p) if t in mods and t != m and not m.startswith(t + ".")}
             for m, p in mods.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in graph[m]:
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_nothing_in_the_core_imports_a_ui():
    for mod, path in modules().items():
        uis = {t for t in imports_of(mod, path) if t.split(".")[0] in UI_MODULES}
        assert not uis, f"{mod} imports {sorted(uis)}"


@pytest.mark.parametrize("package", sorted({p.parent for p in PKG.rglob("__init__.py")}))
def test_every_package_says_what_it_owns(package):
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
    assert doc and len(doc.split()) >= 12, f"{package.name}/__init__.py needs a docstring saying what it owns"
