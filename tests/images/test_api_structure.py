"""The API layer's shape (issue 9, item 2): checked, so it stays that way."""

import ast
from pathlib import Path

import images

PACKAGE = Path(images.__file__).resolve().parent
API = PACKAGE / "api"


def test_views_never_branch_on_the_format():
    for name in ("views.py", "base.py", "changes.py"):
        tree = ast.parse((API / name).read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Compare)
                and isinstance(node.left, ast.Attribute)
                and node.left.attr == "fmt"
            ):
                compared = [ast.unparse(c) for c in node.comparators]
                assert compared == ["'html'"] and name == "base.py", (
                    f"{name}:{node.lineno} branches on the format"
                )


def test_no_api_module_is_over_400_lines():
    for path in API.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path


def test_selectors_and_rows_never_import_the_api_layer():
    for name in ("selectors.py", "rows.py"):
        tree = ast.parse((PACKAGE / name).read_text())
        imported = [
            n.module if isinstance(n, ast.ImportFrom) else a.name
            for n in ast.walk(tree)
            if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in (n.names if isinstance(n, ast.Import) else [None])
        ]
        assert not [m for m in imported if m and m.startswith("images.api")], name
