"""The wheel installs one namespace, `crew`, and a plain (non-editable) install imports like the editable one."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from tests.conftest import REPO

SOURCES = ["crew", "roles", "tools", "workflows", "sandbox", "pyproject.toml", "README.md"]


def _build_wheel(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(origin, src / name)
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("crew-*.whl")
    return wheel


def test_wheel_has_only_the_crew_namespace(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"crew", next(t for t in top if t.endswith(".dist-info"))}
    for sub in ("roles", "tools", "workflows", "sandbox"):
        assert f"crew/{sub}/__init__.py" in names
    assert not top & {"roles", "tools", "workflows", "sandbox"}

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import crew, crew.roles, crew.tools, crew.workflows, crew.sandbox;"
            "print('\\n'.join(m.__file__ for m in (crew, crew.roles, crew.tools, crew.workflows, crew.sandbox)))")
    proc = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    files = proc.stdout.split()
    assert len(files) == 5 and all(f.startswith(str(site)) for f in files)


def test_editable_install_maps_the_folders_into_crew():
    import crew.roles
    import crew.sandbox
    import crew.tools
    import crew.workflows

    assert crew.roles.__file__ == str(REPO / "roles" / "__init__.py")
    assert crew.sandbox.__file__ == str(REPO / "sandbox" / "__init__.py")
    assert crew.tools.__file__.startswith(str(REPO / "tools"))
    assert crew.workflows.__file__.startswith(str(REPO / "workflows"))


def test_core_imports_nothing_of_the_other_folders():
    for path in (REPO / "crew").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for sub in ("roles", "tools", "workflows", "sandbox"):
            assert f"crew.{sub}" not in text, f"{path.name} imports crew.{sub}; the core may import none of the others"


_PACKAGES = {"crew": "crew", "roles": "crew.roles", "tools": "crew.tools", "workflows": "crew.workflows",
             "sandbox": "crew.sandbox"}


def _imports() -> dict[str, set[str]]:
    """Every crew module -> the crew modules it imports anywhere in its source (function-level and type-checking
    imports included: a cycle hidden in a function is still a cycle)."""
    import ast

    found: dict[str, set[str]] = {}
    for folder, package in _PACKAGES.items():
        for path in (REPO / folder).glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            names: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("crew"):
                    names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
                elif isinstance(node, ast.Import):
                    names |= {a.name for a in node.names if a.name.startswith("crew")}
            found[name] = names
    return {module: {n for n in names if n in found and n != module} for module, names in found.items()}


def test_no_module_imports_its_way_back_to_itself():
    """DESIGN.md: dependencies point one way. Packages' __init__ re-exports are the public surface, not modules."""
    graph = _imports()
    packages = set(_PACKAGES.values())
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dependency in sorted(graph[module] - packages):
            if state.get(dependency) == 1:
                cycles.append([*path[path.index(dependency):], dependency])
            elif dependency not in state:
                visit(dependency, [*path, dependency])
        state[module] = 2

    for module in sorted(graph.keys() - packages):
        if module not in state:
            visit(module, [module])
    assert cycles == []
    assert "crew._brain" in graph["crew._role"] and "crew._task" in graph["crew._budget"]  # the graph is real
