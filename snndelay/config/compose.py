"""Hydra composes configs/; the schemas (config/schema.py) type every value; validate()
checks them (config/checks.py).

A bad value gives a ConfigError whose message is one line naming the key and what is allowed;
the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from snndelay.config.checks import one_of, validate
from snndelay.config.schema import GROUP_SCHEMAS, Config, option_schemas
from snndelay.errors import ConfigError


def config_dir() -> Path:
    """Where the Hydra config groups are: SNNDELAY_CONFIG_DIR when set; else the configs
    installed inside the package (a wheel install: snndelay/configs); else the top-level
    configs/ of the source checkout (an editable install, where users edit them)."""
    env = os.environ.get("SNNDELAY_CONFIG_DIR")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parent.parent
    installed = package / "configs"
    return installed if (installed / "config.yaml").is_file() else package.parent / "configs"


def _options_with(key: str) -> list[str]:
    """The options of key's group whose schema has key's second part (group.leaf...)."""
    group, _, rest = key.partition(".")
    leaf = rest.split(".")[0]
    return sorted(name for name, schema in option_schemas().get(group, {}).items()
                  if leaf in {f.name for f in fields(schema)})


def one_line(exc: Exception) -> str:
    text = str(exc)
    missing = re.search(r"Could not find '([^/']+)/([^']+)'", text)
    if missing:
        group, option = missing.groups()
        options = sorted({p.stem for p in (config_dir() / group).glob("*.yaml")}
                         | set(option_schemas().get(group, {})))
        return f"{group}: no option {option!r}; available: {', '.join(options)}"
    absent = re.search(r"Key '[^']+' not in '[^']+'\s+full_key: (\S+)", text)
    if absent:  # a preset's key of one option, composed with another option of its group
        key = absent.group(1)
        where = re.match(r"In '([^']+)'", text)
        users = _options_with(key)
        return (f"{key}{f' (set in {where.group(1)})' if where else ''}: the chosen "
                f"{key.split('.', 1)[0]} option has no such key"
                + (f"; it applies to {key.split('.', 1)[0]}={', '.join(users)}" if users else ""))
    unknown = re.search(r"Could not override '([^']+)'", text)
    if unknown:
        key = unknown.group(1)
        group = key.split(".", 1)[0]
        if "." in key and (config_dir() / group).is_dir():
            users = _options_with(key)
            if users:  # a key of the schema that only some options use
                return (f"{key}: the chosen {group} option does not use it; it applies to "
                        f"{group}={', '.join(users)}")
            return (f"{key}: not a key of the chosen {group} option "
                    f"(`snndelay train --cfg {group}=OPTION` lists its keys)")
        return f"{key}: unknown key (`snndelay train --cfg` lists the keys)"
    if isinstance(exc, OmegaConfBaseException):
        key = getattr(exc, "full_key", None)
        msg = str(getattr(exc, "msg", None) or exc).splitlines()[0]
        return f"{key}: {msg}" if key else msg
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _chosen(raw: Any, group: str) -> str:
    """The option a raw config chose for `group` (its name key), or the default's."""
    node: Any = raw.get(group) if hasattr(raw, "get") else None
    name = node.get("name") if hasattr(node, "get") else None
    return str(name) if name is not None else str(getattr(Config(), group).name)


def _typed_base(raw: Any) -> DictConfig:
    """The structured Config with the schema of each chosen option in place."""
    base = OmegaConf.structured(Config)
    for group, schemas in option_schemas().items():
        name = _chosen(raw, group)
        one_of(f"{group}.name", name, tuple(schemas))
        setattr(base, group, OmegaConf.structured(schemas[name]))
    return base


def from_dictconfig(raw: DictConfig | dict) -> Config:
    """Type-check a composed (or saved) config against the schema of every chosen option,
    then validate()."""
    try:
        merged = OmegaConf.merge(_typed_base(raw), raw)
        cfg = OmegaConf.to_object(merged)
        assert isinstance(cfg, Config)
    except OmegaConfBaseException as exc:
        key = str(getattr(exc, "full_key", "") or "")
        group = key.split(".", 1)[0]
        schemas = option_schemas()
        if group in schemas and "not in" in str(exc):
            name = _chosen(raw, group)
            keys = [f.name for f in fields(schemas[group][name])]
            raise ConfigError(f"{key}: not a key of {group}={name} (its keys: "
                              f"{', '.join(keys)})") from None
        raise ConfigError(one_line(exc)) from None
    return validate(cfg)


def without_foreign_keys(raw: dict) -> dict:
    """A saved config with the keys its chosen options do not have removed: runs written
    before each option had its own schema saved every option's keys in one section."""
    out = dict(raw)
    for group, schemas in option_schemas().items():
        node = out.get(group)
        if isinstance(node, dict):
            name = _chosen(out, group)
            if name in schemas:
                keys = {f.name for f in fields(schemas[name])}
                out[group] = {k: v for k, v in node.items() if k in keys}
    return out


_REGISTERED: set[tuple[str, str]] = set()


def _register_schemas(path: Path) -> None:
    """Tell Hydra the schemas, so that configs/GROUP/NAME.yaml can extend _schema_NAME (an
    option's own schema) or _schema (the group's); an option registered in code without a
    YAML file (a backend added by a plugin or a test) is its schema under its own name."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    entries = [(group, "_schema", schema) for group, schema in GROUP_SCHEMAS.items()]
    for group, schemas in option_schemas().items():
        for name, schema in schemas.items():
            entries.append((group, f"_schema_{name}", schema))
            if not (path / group / f"{name}.yaml").is_file():
                entries.append((group, name, schema))
    for group, name, schema in entries:
        if (group, name) not in _REGISTERED:
            cs.store(group=group, name=name, node=schema)
            _REGISTERED.add((group, name))


def compose(overrides: list[str]) -> tuple[DictConfig, Config]:
    """Compose configs/ with Hydra's own override grammar; (raw config, checked Config)."""
    path = config_dir()
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"config directory {path} has no config.yaml "
                          "(set SNNDELAY_CONFIG_DIR to the project's configs/)")
    stamp: tuple = tuple(sorted((str(p), p.stat().st_mtime_ns) for p in path.rglob("*.yaml")))
    stamp += tuple(sorted(f"{g}/{n}" for g, s in option_schemas().items() for n in s))
    raw = copy.deepcopy(_hydra_compose(str(path), tuple(overrides), stamp))
    return raw, from_dictconfig(raw)


@functools.lru_cache(maxsize=256)
def _hydra_compose(path: str, overrides: tuple[str, ...], stamp: tuple) -> DictConfig:
    """Hydra's composition, remembered per (config files and their times, overrides): a sweep
    or a test composes the same configs many times, at about 0.2 s each."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    _register_schemas(Path(path))
    try:
        with initialize_config_dir(config_dir=path, version_base=None):
            return hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(one_line(exc)) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # Hydra's internals reject some malformed overrides (e.g. "=3") with plain errors.
        raise ConfigError(f"cannot apply the overrides {' '.join(overrides)}: "
                          f"{one_line(exc)}") from None


def with_backend(cfg: Config, name: str | None, overrides: list[str] | tuple[str, ...] = ()
                 ) -> Config:
    """cfg run on backend `name` (None: its own) with backend.KEY=VALUE overrides: the keys
    both backends' schemas have keep cfg's values (BackendConfig.for_backend), the others take
    the new schema's defaults, then the overrides; type-checked and validated as any config
    (ConfigError, one line)."""
    schemas = option_schemas()["backend"]
    name = name or cfg.backend.name
    one_of("--backend", name, tuple(schemas))
    backend = cfg.backend if name == cfg.backend.name else cfg.backend.for_backend(schemas[name])
    raw: Any = OmegaConf.to_container(OmegaConf.structured(cfg))
    raw["backend"] = OmegaConf.to_container(OmegaConf.structured(backend))
    raw = OmegaConf.create(raw)
    for item in overrides:
        key, eq, _ = item.partition("=")
        if not (eq and key.startswith("backend.") and len(key) > len("backend.")):
            raise ConfigError(f"{item}: only backend.KEY=VALUE overrides apply here (the keys of "
                              f"backend={name}: {', '.join(f.name for f in fields(schemas[name]))})")
        try:
            raw = OmegaConf.merge(raw, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"{item}: {one_line(exc)}") from None
    return from_dictconfig(raw)


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
