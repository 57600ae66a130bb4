"""Plain TOML values checked against a frozen dataclass's annotations: the typing under reslab's config.

``build(cls, table)`` makes ``cls`` from a nested table, refusing unknown keys and converting only where
nothing is lost (an integer given for a float, ``"1e-3"`` for a float, ``"auto"`` for the integer
settings reslab chooses itself); any other mismatch is a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from reslab.errors import ConfigError

AUTO, AUTO_KEYS = -1, {"data.val_size"}  # an integer setting chosen by reslab ("auto" in a config file)


def coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotated type ``tp``, converting where it is lossless."""
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif tp is int:
        if key in AUTO_KEYS and (value == "auto" or value == AUTO):
            return AUTO
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                try:
                    f = float(value)
                    if f.is_integer():
                        return int(f)
                except ValueError:
                    pass
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.strip("[]()").split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            args = typing.get_args(tp)
            item = args[0]
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(coerce(key, v.strip() if isinstance(v, str) else v, item) for v in value)
            if len(value) == len(args):
                return tuple(coerce(key, v.strip() if isinstance(v, str) else v, a) for v, a in zip(value, args))
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    raise ConfigError(f"{key}: expected {getattr(tp, '__name__', str(tp))}, got {value!r}")


def build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"[{prefix.rstrip('.')}]" if prefix else "the top level"
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}' in {where}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a table of settings, got {value!r}")
            kwargs[name] = build(tp, value, key + ".")
        else:
            kwargs[name] = coerce(key, value, tp)
    return cls(**kwargs)
