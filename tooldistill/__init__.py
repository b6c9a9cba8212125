"""tooldistill: distill a Gemini teacher into a small, fast tool-calling router.

The public API of each stage lives in its subpackage (``tooldistill.data``, ``.distill``, ``.curate``,
``.train``, ``.eval``, ``.db``); this module re-exports the catalogue models every stage shares.
Importing it never imports torch, transformers or datasets.
"""

from .catalog import NO_TOOL, Catalog, Label, Tool, ToolCall, load_catalog, parse_label
from .config import Workspace, load_workspace
from .errors import ToolDistillError

__version__ = "0.1.0"

__all__ = [
    "NO_TOOL", "Catalog", "Label", "Tool", "ToolCall", "load_catalog", "parse_label",
    "Workspace", "load_workspace", "ToolDistillError", "__version__",
]
