"""The package dependency rules of DESIGN.md, checked on the source itself."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"schemas", "hybrid_models", "workers", "pipelines"}

# package -> (our packages it may import, third-party roots it must not import)
RULES = {
    "schemas": (set(), {"torch", "ray", "apache_beam"}),
    "hybrid_models": ({"schemas"}, {"ray", "apache_beam", "fsspec", "pyarrow"}),
    "workers": ({"schemas", "hybrid_models"}, {"apache_beam"}),
    "pipelines": ({"schemas", "hybrid_models", "workers"}, {"ray"}),
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_follow_design(package):
    allowed_ours, forbidden = RULES[package]
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"package {package} has no modules"
    violations = []
    for path in files:
        roots = imported_roots(path)
        for root in sorted(roots & (OURS - {package} - allowed_ours)):
            violations.append(f"{path.relative_to(ROOT)} imports {root}")
        for root in sorted(roots & forbidden):
            violations.append(f"{path.relative_to(ROOT)} imports {root}")
    assert violations == []


def test_checker_sees_violations(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import ray.data\nfrom pipelines.cli import main\nfrom . import x\n")
    assert imported_roots(module) == {"ray", "pipelines"}
