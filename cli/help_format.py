"""Help text without typer's type noise: `--json <bool>`, `--actor <str>`, `{case}`.

Typer (0.29) prints every parameter's Python type in angle brackets, flags included, and wraps
required arguments in braces on the usage line; none of that helps a reader. Here, as click
and most Unix tools do: an argument shows as its name in capitals (CASE), an option that takes
a value shows what it takes (TEXT, INTEGER, PATH, a|b, or its metavar), and a flag shows
nothing. Typer builds its parameter objects itself, so the display methods are replaced on its
classes; importing this module once (cli/main.py does) is enough.
"""

from __future__ import annotations

from typing import Any

from typer import core

_LABELS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "bool": "BOOLEAN"}
_original_display_type = core.TyperOption.display_type


def _option_type(self: core.TyperOption, ctx: Any) -> str | None:
    if self.is_flag or self.count:
        return None
    if self.metavar:
        return str(self.metavar)
    label = _original_display_type(self, ctx).strip("<>")
    return _LABELS.get(label, label.upper() if label.isalpha() else label)


def _argument_name(self: core.TyperArgument) -> str:
    return str(self.metavar) if self.metavar is not None else str(self.name).upper()


def _argument_usage(self: core.TyperArgument) -> str:
    name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
    return name + ("..." if self.nargs != 1 else "")


core.TyperOption.display_type_rich = _option_type  # type: ignore[method-assign,assignment]
core.TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign,assignment]
core.TyperArgument.display_name_raw = property(_argument_name)  # type: ignore[assignment,method-assign]
core.TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
