"""tooldistill: distill a Gemini teacher into a small, fast tool-calling router.

The public API of each stage lives in its subpackage (``tooldistill.data``, ``.distill``, ``.curate``,
``.train``, ``.eval``, ``.db``); this module re-exports the catalogue models every stage shares.
Importing it never imports torch, transformers or datasets, nor pydantic: the re-exported names are loaded on
first access (PEP 562 ``__getattr__``), so ``import tooldistill`` and ``tooldistill --help`` stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> submodule that defines it; each is imported the first time one of its names is asked for
_LAZY = {
    "NO_TOOL": "catalog", "Catalog": "catalog", "Label": "catalog", "Tool": "catalog", "ToolCall": "catalog",
    "load_catalog": "catalog", "parse_label": "catalog",
    "Workspace": "config", "load_workspace": "config",
    "ToolDistillError": "errors",
}
# submodules that `import tooldistill` used to load eagerly, so ``tooldistill.catalog.X`` keeps working after it
_SUBMODULES = {"catalog", "config", "errors"}

__all__ = [
    "NO_TOOL", "Catalog", "Label", "Tool", "ToolCall", "load_catalog", "parse_label",
    "Workspace", "load_workspace", "ToolDistillError", "__version__",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ resolves these
    from .catalog import NO_TOOL, Catalog, Label, Tool, ToolCall, load_catalog, parse_label
    from .config import Workspace, load_workspace
    from .errors import ToolDistillError


def __getattr__(name: str) -> Any:
    from importlib import import_module

    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)  # the import binds it as an attribute of this package
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tooldistill' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
