"""The plugin manager: built-in plugins, entry-point plugins, and name registries.

Built-ins are ordinary plugins listed by module name, so a third-party plugin (an
entry point in the group ``spikingjelly_lt``) has exactly the same powers. Set
``SJLT_DISABLE_ENTRY_POINTS=1`` to skip third-party plugins. A plugin that fails to
import or to register is reported in one warning line and skipped. For one run, without
packaging, ``sjlt --plugin MODULE_OR_FILE.py ...`` (repeatable) or ``SJLT_PLUGINS=a,b``
register plugin modules too (:func:`add_plugins`; a failure there is an error).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass

import pluggy

from . import hookspecs, logger
from ._versions import dist_version
from .errors import UnknownNameError

__all__ = [
    "pm",
    "KINDS",
    "ENTRY_POINT_GROUP",
    "registry",
    "lookup",
    "names",
    "plugin_info",
    "entry_info",
    "check_pending",
]

ENTRY_POINT_GROUP = "spikingjelly_lt"
KINDS = ("pruners", "neurons", "architectures", "energy_models", "datasets")
_SINGULAR = {
    "pruners": "pruner",
    "neurons": "neuron",
    "architectures": "architecture",
    "energy_models": "energy model",
    "datasets": "dataset",
}

DEFAULT_PLUGINS = (
    "spikingjelly_lt.nn.neurons",
    "spikingjelly_lt.pruners.dense",
    "spikingjelly_lt.pruners.supermask",
    "spikingjelly_lt.pruners.imp",
    "spikingjelly_lt.pruners.early",
    "spikingjelly_lt.pruners.gmp",
    "spikingjelly_lt.models.resnet19",
    "spikingjelly_lt.models.vgg16",
    "spikingjelly_lt.data.builtin",
    "spikingjelly_lt.energy.cost_models",
)
# a built-in plugin whose module moved keeps the name it registered under before (stored rows'
# ``plugins`` info and `sjlt plugins` name it): registered name -> module
_MOVED = {"spikingjelly_lt.nn.neurons": "spikingjelly_lt.neuron.neurons"}

pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
pm.add_hookspecs(hookspecs)

_distributions: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)
_loaded = False


def _warn(plugin: str, exc: BaseException) -> None:
    logger.warning("plugin %s failed and was skipped: %s: %s", plugin, type(exc).__name__, exc)


def load_plugins() -> None:
    """Register the built-ins and (unless disabled) the entry-point plugins, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    version = dist_version("spikingjelly-lt", "dev")
    for modname in DEFAULT_PLUGINS:
        try:
            mod = importlib.import_module(_MOVED.get(modname, modname))
        except Exception as exc:  # noqa: BLE001 - report and go on
            _warn(modname, exc)
            continue
        pm.register(mod, name=modname)
        _distributions[modname] = ("spikingjelly-lt", version)
    if os.environ.get("SJLT_DISABLE_ENTRY_POINTS", "").strip() not in ("", "0"):
        return
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # noqa: BLE001
            _warn(ep.name, exc)
            continue
        dist = ep.dist
        _distributions[ep.name] = (dist.name, dist.version) if dist else ("?", "?")
    pm.check_pending()
    extra = [t.strip() for t in os.environ.get("SJLT_PLUGINS", "").split(",") if t.strip()]
    if extra:
        add_plugins(extra, origin="SJLT_PLUGINS")


def add_plugins(specs: list[str], origin: str = "--plugin") -> list[str]:
    """Register plugin modules for this process: ``pkg.module`` or ``path/to/file.py`` each (what
    ``--plugin`` and ``SJLT_PLUGINS=a,b`` do). Unlike entry points, a plugin asked for by name that
    fails to import or register is one :class:`UsageError`, not a warning. Returns their names."""
    from .errors import UsageError
    from .references import file_sha256, import_module_or_file

    load_plugins()
    names_added = []
    for spec in specs:
        if pm.get_plugin(spec) is not None:
            continue
        module, path = import_module_or_file(spec, f"plugin ({origin})")
        try:
            pm.register(module, name=spec)
            pm.check_pending()
        except Exception as exc:  # noqa: BLE001
            if pm.get_plugin(spec) is not None:
                pm.unregister(name=spec)
            raise UsageError(f"plugin {spec!r} ({origin}) cannot be registered: {exc}") from None
        version = file_sha256(path)[:12] if path and os.path.isfile(path) else "?"
        _distributions[spec] = (f"{origin} {path or spec}", version)
        names_added.append(spec)
    return names_added


def check_pending() -> None:
    """Fail loudly if a registered plugin implements a hook that does not exist."""
    load_plugins()
    pm.check_pending()


@dataclass(frozen=True)
class Entry:
    name: str
    obj: object
    plugin: str


# kind -> (the hook implementations it was built from, the names they registered)
_registries: dict[str, tuple[tuple, dict[str, Entry]]] = {}


def registry(kind: str) -> dict[str, Entry]:
    """All names registered for ``kind``, each with the plugin that registered it.

    Each hook implementation runs in isolation: one that raises is reported in a
    warning and the rest still register. Duplicate names are an error. The hooks run
    once per process: the result is kept until the implementations of the hook change
    (``--plugin`` / ``SJLT_PLUGINS`` registering more, a plugin unregistered), so a
    broken plugin's warning appears once.
    """
    if kind not in KINDS:
        raise UnknownNameError("registry kind", kind, KINDS)
    load_plugins()
    hook = getattr(pm.hook, f"register_{kind}")
    impls = hook.get_hookimpls()  # registration order
    stamp = tuple((impl.plugin_name, impl.function) for impl in impls)
    cached = _registries.get(kind)
    if cached is not None and cached[0] == stamp:
        return dict(cached[1])
    found: dict[str, Entry] = {}
    for impl in impls:
        plugin_name = impl.plugin_name
        staged: dict[str, Entry] = {}

        def register(name: str, obj: object, _staged=staged, _plugin=plugin_name) -> None:
            if name in found or name in _staged:
                owner = (found.get(name) or _staged[name]).plugin
                raise ValueError(f"{_SINGULAR[kind]} {name!r} is already registered by {owner}")
            _staged[name] = Entry(name, obj, _plugin)

        try:
            impl.function(register)
        except Exception as exc:  # noqa: BLE001
            _warn(plugin_name, exc)
            continue
        found.update(staged)
    _registries[kind] = (stamp, found)
    return dict(found)


def names(kind: str) -> list[str]:
    return sorted(registry(kind))


REFERABLE = ("architectures", "datasets")  # kinds that also take a reference (``file.py:make``, ``tensors:PATH``)


def reference(kind: str, name: str):
    """The object a reference names for ``kind``, or None when ``name`` is a plain name.

    Architectures: ``file.py:callable`` / ``pkg.module:callable`` (see
    :mod:`spikingjelly_lt.models.user`); data sets: those, ``tensors:``, ``imagefolder:``
    and ``frames:`` (see :mod:`spikingjelly_lt.data.sources`). Each object carries its
    ``source`` (reference, file, sha256 / fingerprint) for the cell's identity.
    """
    from .references import is_reference

    if kind not in REFERABLE or not is_reference(name):
        return None
    if kind == "architectures":
        from .models.user import UserArchitecture
        from .references import load_reference

        return UserArchitecture(*load_reference(name, "architecture"))
    from .data.sources import dataset_reference

    return dataset_reference(name)


def lookup(kind: str, name: str):
    """The object registered as ``name`` for ``kind`` (or named by reference, see :func:`reference`);
    an unknown name lists the valid ones."""
    ref = reference(kind, name)
    if ref is not None:
        return ref
    reg = registry(kind)
    if name not in reg:
        hint = (["FILE.py:callable", "pkg.module:callable"] if kind == "architectures" else
                ["tensors:PATH", "imagefolder:DIR", "frames:PATH", "pkg.module:callable"] if kind == "datasets"
                else [])
        exc = UnknownNameError(_SINGULAR[kind], name, reg)
        if hint:
            exc.args = (f"{exc.args[0]}, or {', '.join(hint)}",)
        raise exc
    return reg[name].obj


def entry_info(kind: str, name: str) -> dict[str, str]:
    """Who registered ``name`` for ``kind``: plugin, distribution and version (for result rows);
    for a reference, where it comes from."""
    ref = reference(kind, name)
    if ref is not None:
        src = ref.source.to_dict() if hasattr(ref.source, "to_dict") else dict(ref.source)
        return {"name": name, "plugin": "reference", **{k: v for k, v in src.items() if v is not None}}
    entry = registry(kind)[name]
    dist, version = _distributions.get(entry.plugin, ("?", "?"))
    return {"name": name, "plugin": entry.plugin, "distribution": dist, "version": version}


def plugin_info() -> list[dict]:
    """Each plugin: name, distribution, version and the hooks it implements."""
    load_plugins()
    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda p: (p[0] not in DEFAULT_PLUGINS, p[0])):
        dist, version = _distributions.get(name, ("?", "?"))
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        origin = ("built-in" if name in DEFAULT_PLUGINS else "--plugin" if dist.startswith("--plugin ")
                  else "SJLT_PLUGINS" if dist.startswith("SJLT_PLUGINS ") else "entry point")
        rows.append({"name": name, "distribution": dist, "version": version, "hooks": hooks, "origin": origin})
    return rows
