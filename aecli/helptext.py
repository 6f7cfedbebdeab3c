"""Help text as image tools show it.

Typer's own rendering writes a required argument as ``{input}``, every value as ``<str>``,
``<int>`` or ``<list[str]>``, and cuts each command's description in the command list to fit
one line.  ``tidy`` changes the parameters and commands of a built click command in place:
arguments in capitals (``INPUT``, ``[OUTPUT]``, ``INPUTS...``), option values as ``N`` (whole
numbers), ``X`` (numbers), ``PATH`` or ``TEXT``, choices as ``a|b|c``, and each command's whole
first sentence in the list.
"""

from __future__ import annotations

import types

def _first_sentence(text: str) -> str:
    text = " ".join((text or "").split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def _name_of(annotation) -> str:
    """N, X, PATH or TEXT for a Python type."""
    import pathlib

    if annotation is int:
        return "N"
    if annotation is float:
        return "X"
    if isinstance(annotation, type) and issubclass(annotation, pathlib.PurePath):
        return "PATH"
    return "TEXT"


def _value_name(param) -> str:
    """N, X, PATH, TEXT or a|b|c for an option's value ('' for a flag)."""
    import typing

    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    desc = getattr(param, "type_descriptor", None)
    if desc is None:
        return "TEXT"
    if desc.is_choice and desc.choices:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices)
    annotation = desc.annotation
    if desc.is_tuple:
        return " ".join(_name_of(a) for a in typing.get_args(annotation))
    if desc.is_list:
        args = typing.get_args(annotation)
        return _name_of(args[0] if args else str)
    return _name_of(annotation)


def _tidy_param(param) -> None:
    if param.param_type_name == "argument":
        label = param.name.upper()
        many = param.nargs != 1
        param.metavar = label + ("..." if many else "")

        def usage(self, label=label, many=many):
            shown = label + ("..." if many else "")
            return shown if self.required else f"[{shown}]"

        param._usage_display_name = types.MethodType(usage, param)
        param.display_type = types.MethodType(lambda self, ctx: "", param)
        if hasattr(param, "display_type_rich"):
            param.display_type_rich = types.MethodType(lambda self, ctx: "", param)
    else:
        value = _value_name(param)
        param.display_type = types.MethodType(lambda self, ctx, value=value: value, param)
        if hasattr(param, "display_type_rich"):
            param.display_type_rich = types.MethodType(lambda self, ctx, value=value: value, param)


def tidy(cmd):
    """`cmd` (a click command or group, with its subcommands), its help tidied; returned for chaining."""
    for param in getattr(cmd, "params", []):
        try:
            _tidy_param(param)
        except (AttributeError, TypeError):  # a parameter kind this version renders otherwise: left as it is
            pass
    for sub in getattr(cmd, "commands", {}).values():
        sub.short_help = _first_sentence(sub.help or "")
        tidy(sub)
    return cmd
