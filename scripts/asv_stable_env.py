"""asv plugin (asv.conf.json "plugins"): key an existing environment by its Python version.

asv 0.6 names an ``environment_type: "existing"`` environment after the interpreter's
full path (``existing-py_work_main_.venv_bin_python``). That name is part of every
results file name and of the key ``asv compare`` matches results by, so two clones of
the same commit benchmarked with their own ``.venv`` land in separate series and never
compare; the results' ``python`` parameter, which keys the dashboard's graphs, is the
path too. This plugin makes them ``existing-py<major.minor>`` (plus any tagged
environment variables, as asv does) and ``<major.minor>``, so the key is: machine
(``asv machine``) + Python version. Benchmarking two different environments on one
machine under one key mixes them: give such a setup its own machine name
(``asv machine --machine NAME``).

asv imports the plugin by name with the current directory on ``sys.path`` (the leading
dot in ``".scripts.asv_stable_env"``), so run asv from the repository root, as
docs/asv.md says.
"""

from __future__ import annotations


def _version(env) -> str:
    """major.minor of the environment's interpreter (asv's ExistingEnvironment computes it
    and then overwrites it with the interpreter's path)."""
    version = getattr(env, "_sjlt_version", None)
    if version is None:
        from asv import util

        version = util.check_output(
            [env._executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).strip()
        env._sjlt_version = version
    return version


def stable_name(env) -> str:
    from asv import environment

    return environment.get_env_name(env.tool_name, _version(env), {}, env._tagged_env_vars)


def setup() -> None:
    """Called by asv's plugin manager when it imports this module: the environment's
    name and its ``python`` (the results' ``python`` parameter, which keys the
    dashboard's graphs) become the version, as for asv's own environment types."""
    from asv import environment

    cls = environment.ExistingEnvironment
    if not getattr(cls, "_sjlt_stable_name", False):
        cls.name = property(stable_name)
        cls.python = property(_version)
        cls._sjlt_stable_name = True
