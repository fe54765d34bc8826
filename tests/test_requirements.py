"""requirements.txt against the code a Space runs: every third-party package that app.py and ui/, the Streamlit entry
and pages, and dgf_core import is pinned there (a Space installs requirements.txt and nothing else), every pin is
either imported or says on its line why it is there, and no system package is needed beyond what the pins bring
(packages.txt lists Debian packages when one is)."""
from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = {"dgf_core", "app", "ui", "streamlit_shared", "streamlit_app", "pages"}


def space_sources() -> list[Path]:
    return ([ROOT / "app.py", ROOT / "streamlit_app.py", ROOT / "streamlit_shared.py"]
            + sorted((ROOT / "ui").glob("*.py")) + sorted((ROOT / "pages").glob("*.py"))
            + sorted((ROOT / "dgf_core").rglob("*.py")))


def _optional(node: ast.Try) -> bool:
    """A try whose handler catches ImportError / ModuleNotFoundError: what it imports is optional."""
    names = set()
    for h in node.handlers:
        for t in ([h.type] if not isinstance(h.type, ast.Tuple) else h.type.elts) if h.type else []:
            names.add(getattr(t, "id", None))
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def imported_top_levels(path: Path) -> tuple[set[str], set[str]]:
    """(required, optional) top-level module names imported anywhere in the file (absolute imports only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    optional_nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and _optional(node):
            for inner in node.body:
                optional_nodes |= {id(n) for n in ast.walk(inner)}
    required, optional = set(), set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module.split(".")[0]]
        (optional if id(node) in optional_nodes else required).update(names)
    return required, optional


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_lines() -> dict[str, str]:
    """{normalized distribution name: the full line} of requirements.txt's pins."""
    out = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            assert "==" in spec, f"requirements.txt: {spec!r} is not pinned with =="
            out[normalize(spec.split("==")[0])] = line
    return out


def third_party_imports() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({module: files} required, {module: files} optional) for the modules outside the stdlib and the project."""
    required, optional = {}, {}
    for path in space_sources():
        req, opt = imported_top_levels(path)
        for names, into in ((req, required), (opt - req, optional)):
            for name in names - LOCAL - set(sys.stdlib_module_names) - {"__future__"}:
                into.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return required, optional


def test_every_import_is_pinned():
    pins = requirement_lines()
    dists = packages_distributions()
    required, _ = third_party_imports()
    assert {"torch", "gradio", "safetensors", "PIL", "numpy"} <= set(required)  # the scan finds imports at all
    missing = []
    for module, files in sorted(required.items()):
        names = [normalize(d) for d in dists.get(module, [module])]
        if not any(n in pins for n in names):
            missing.append(f"{module} (distribution {names}) imported by {sorted(files)[:3]}")
    assert not missing, "not in requirements.txt, so a Space would not install them:\n" + "\n".join(missing)


def test_every_pin_is_imported_or_explained():
    pins = requirement_lines()
    dists = packages_distributions()
    required, optional = third_party_imports()
    used = {normalize(d) for m in set(required) | set(optional) for d in dists.get(m, [m])}
    unexplained = [line for name, line in pins.items() if name not in used and "#" not in line]
    assert not unexplained, f"pinned but imported by nothing, and no comment saying why: {unexplained}"


def test_optional_imports_fail_with_a_message():
    """An optional package (in a try/except ImportError) is not a requirement; the code names it when missing."""
    _, optional = third_party_imports()
    assert "diffusers" in optional  # the super-resolution backend
    for module, files in optional.items():
        for f in files:
            assert f"pip install {module}" in (ROOT / f).read_text(), f"{f}: no 'pip install {module}' message"


def test_no_system_package_is_needed():
    """ffmpeg comes from imageio-ffmpeg's wheel: the code never looks for a system binary, so no packages.txt."""
    pins = requirement_lines()
    assert "imageio-ffmpeg" in pins
    calls_binaries = []
    for path in space_sources():
        text = path.read_text(encoding="utf-8")
        if re.search(r"shutil\.which\(|\[\s*[\"'](ffmpeg|convert|git)[\"']", text):
            calls_binaries.append(str(path.relative_to(ROOT)))
    packages = ROOT / "packages.txt"
    if packages.exists():
        names = [l.strip() for l in packages.read_text().splitlines() if l.strip() and not l.startswith("#")]
        assert all(re.fullmatch(r"[a-z0-9][a-z0-9+.\-]+", n) for n in names), names
    else:
        assert not calls_binaries, f"these call a system binary; list its Debian package in packages.txt: {calls_binaries}"
