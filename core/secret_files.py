"""Secret settings given as files (HUB_<NAME>_FILE), a pydantic-settings source.

A setting that can hold a secret can be given as HUB_<NAME>_FILE, the path of a
file holding its value, instead of HUB_<NAME>: `hub run` hands its components
secrets so (hub/stack.py), because a process's environment is readable by others
(/proc/<pid>/environ, `ps e`, crash reports) and inherited by everything it starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, get_args

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

# Secret: every SecretStr setting, and the URLs that may carry a password.
SECRET_URL_SETTINGS = frozenset({"catalog_url", "postgres_dsn", "schema_registry_url"})
# The one secret a component may get in its environment; its file setting is
# HUB_MASTER_KEY_FILE (a JSON key file), so it takes no HUB_MASTER_KEYS_FILE.
ENV_ALLOWED_SETTING = "master_keys"


def _holds_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_holds_secret(a) for a in get_args(annotation))


def secret_setting_names(model: type[BaseSettings]) -> tuple[str, ...]:
    """The settings that take a HUB_<NAME>_FILE (and that no child gets as a value)."""
    return tuple(
        name
        for name, field in model.model_fields.items()
        if name != ENV_ALLOWED_SETTING
        and (name in SECRET_URL_SETTINGS or _holds_secret(field.annotation))
    )


def env_variable(name: str) -> str:
    return f"HUB_{name.upper()}"


def file_variable(name: str) -> str:
    return f"{env_variable(name)}_FILE"


def env_variables(model: type[BaseSettings], name: str) -> set[str]:
    """Every variable that sets the setting: HUB_<NAME> and its aliases (KAFKA_…)."""
    found = {env_variable(name)}
    alias = model.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        found |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
    elif isinstance(alias, str):
        found.add(alias.upper())
    return found


class SecretFileSource(PydanticBaseSettingsSource):
    """HUB_<NAME>_FILE of every secret setting: the file's content, less its final newline."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every file at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in secret_setting_names(self.settings_cls):
            path = os.environ.get(file_variable(name))
            if not path:
                continue
            if any(os.environ.get(v) for v in env_variables(self.settings_cls, name)):
                # Which one wins would be a guess: say so instead.
                raise ValueError(f"both {env_variable(name)} and {file_variable(name)} are set")
            try:
                values[name] = Path(path).read_text().rstrip("\r\n")
            except OSError as exc:
                raise ValueError(f"{file_variable(name)}: cannot read {path}: {exc}") from None
        return values
