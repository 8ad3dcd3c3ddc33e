"""Every key of the config file, found by walking the Config dataclass tree."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from nullmx_milter.config import Config


@dataclass(frozen=True)
class ConfigKey:
    """One key: its table (`policy.replies`), its name and its embedded default."""

    table: str
    name: str
    default: Any

    @property
    def dotted(self) -> str:
        return f"{self.table}.{self.name}"

    @property
    def toml_type(self) -> str | None:
        """The TOML type the default's Python type stands for; None when the loader turns
        some other TOML value into it (then the page says what to write)."""
        value = self.default
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, int):
            return "integer"
        if isinstance(value, float):
            return "number"
        if isinstance(value, str | enum.Enum):
            return "string"
        if isinstance(value, tuple | frozenset | list):
            return "list"
        return None

    @property
    def choices(self) -> tuple[str, ...]:
        """The allowed values of an enumerated key, else ()."""
        if isinstance(self.default, enum.Enum):
            return tuple(str(member.value) for member in type(self.default))
        return ()

    def nested(self, value: object) -> dict[str, Any]:
        """A raw config (as tomllib gives it) that sets this key alone to `value`."""
        raw: dict[str, Any] = {self.name: value}
        for part in reversed(self.table.split(".")):
            raw = {part: raw}
        return raw

    def value_in(self, config: Config) -> Any:
        node: Any = config
        for part in (*self.table.split("."), self.name):
            node = getattr(node, part)
        return node

    def replaced(self, config: Config, value: object) -> Config:
        """`config` with this key set to `value`, unvalidated (for comparisons only)."""
        replaced: Config = _replace(config, (*self.table.split("."), self.name), value)
        return replaced


def _replace(node: Any, path: tuple[str, ...], value: object) -> Any:
    head, *rest = path
    new = _replace(getattr(node, head), tuple(rest), value) if rest else value
    return dataclasses.replace(node, **{head: new})


def config_keys() -> list[ConfigKey]:
    """Every key, in the order the dataclasses declare them. A field holding one of the
    config module's `...Config` dataclasses is a table; any other value is a key."""
    keys: list[ConfigKey] = []

    def walk(node: object, table: str) -> None:
        for field in dataclasses.fields(node):  # type: ignore[arg-type]
            value = getattr(node, field.name)
            if dataclasses.is_dataclass(value) and type(value).__name__.endswith("Config"):
                walk(value, f"{table}.{field.name}" if table else field.name)
            else:
                keys.append(ConfigKey(table, field.name, value))

    walk(Config(), "")
    return keys


def config_tables() -> list[str]:
    """Every table, `policy.replies` included, in declaration order."""
    return list(dict.fromkeys(key.table for key in config_keys()))
