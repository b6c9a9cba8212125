"""Start-up cost: what `import tooldistill` and `tooldistill --help` may load, and that the lazy names still work.

Each check runs a fresh interpreter: this test process has long since imported everything. What is asserted is
the set of modules loaded, never a time (benchmarks/import_time.py measures the time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# never at `import tooldistill` or `tooldistill --help` (ARCHITECTURE / STYLE rule 7, plus what made start-up slow)
HEAVY = ("torch", "transformers", "datasets", "trl", "peft", "sklearn", "cleanlab", "matplotlib", "google.genai",
         "numpy", "pyarrow", "httpx")
# pydantic and what comes with it: its import (~40 ms), its plugin scan over package metadata (importlib.metadata,
# email) and the catalogue's models; sqlite_utils/yaml/dotenv only once a command touches a workspace
STARTUP = ("pydantic", "pydantic_core", "importlib.metadata", "sqlite_utils", "yaml", "dotenv",
           "tooldistill.catalog", "tooldistill.config", "tooldistill.db")


def loaded_after(code: str) -> tuple[set[str], str]:
    """Run ``code`` in a fresh interpreter; return the modules it left loaded and what it printed on stdout."""
    script = f"import sys, json\n{code}\nsys.stderr.write('\\n@@MODULES@@' + json.dumps(sorted(sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stderr.rsplit("@@MODULES@@", 1)[1])), proc.stdout


def run_cli(*args: str) -> str:
    """Code that runs the real `tooldistill` entry point with ``args`` and swallows its SystemExit(0)."""
    return (f"sys.argv = ['tooldistill', *{list(args)!r}]\nfrom tooldistill.cli import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n")


def test_import_tooldistill_loads_neither_pydantic_nor_any_heavy_library():
    loaded, _ = loaded_after("import tooldistill")
    assert sorted(loaded & {*HEAVY, *STARTUP, "typer", "rich"}) == []


def test_top_level_help_loads_no_pydantic_no_catalogue_and_no_heavy_library():
    loaded, out = loaded_after(run_cli("--help"))
    assert "Usage: tooldistill" in out and "distill" in out
    assert sorted(loaded & {*HEAVY, *STARTUP}) == []


@pytest.mark.parametrize("group", ["data", "distill", "curate", "train", "eval", "db"])
def test_group_help_loads_no_heavy_library(group):
    # typer itself builds pydantic TypeAdapters once a sub-command is parsed, so only HEAVY is ruled out here
    loaded, out = loaded_after(run_cli(group, "--help"))
    assert f"Usage: tooldistill {group}" in out
    assert sorted(loaded & set(HEAVY)) == []


def test_every_public_name_is_still_importable_from_the_package():
    import tooldistill
    from tooldistill import catalog, config, errors

    for name in tooldistill.__all__:
        if name == "__version__":
            continue
        home = next(m for m in (catalog, config, errors) if hasattr(m, name))
        assert getattr(tooldistill, name) is getattr(home, name), name
    assert set(tooldistill.__all__) <= set(dir(tooldistill))


def test_star_import_and_submodule_attributes_work_in_a_fresh_interpreter():
    code = ("import tooldistill\nns = {}\nexec('from tooldistill import *', ns)\n"
            "print(json.dumps({'star': sorted(k for k in ns if not k.startswith('__')) + ['__version__'],\n"
            "  'all': sorted(tooldistill.__all__),\n"
            "  'sub': tooldistill.catalog.canonical_dumps({'b': 1, 'a': 2}),\n"
            "  'err': tooldistill.errors.InputError.__name__,\n"
            "  'default': tooldistill.load_catalog().name}))")
    _, out = loaded_after(code)
    got = json.loads(out)
    assert sorted(got["star"]) == got["all"]
    assert got["sub"] == '{"a":2,"b":1}'
    assert got["err"] == "InputError"
    assert got["default"] == "default"


def test_an_unknown_name_is_an_attribute_error_and_an_import_error():
    import tooldistill

    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        tooldistill.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        exec("from tooldistill import no_such_name", {})
