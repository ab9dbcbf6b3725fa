"""User plugins: extra method or dataset modules outside the repository, loaded by file path or
module name in the driver and in every Ray worker, so "a new method is one file" holds even
for a file that lives elsewhere (`run_all.py --plugin path/to/my_method.py`)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

from debiasbench._layout import FOLDERS


class PluginError(ValueError):
    """A plugin that cannot be loaded; the message names the file or module, the cause and the fix."""


def load_plugins(plugins: Iterable[str]) -> None:
    for plugin in plugins:
        path = Path(plugin)
        if plugin.endswith(".py"):
            if not path.is_file():
                raise FileNotFoundError(f"plugin file {plugin!r} not found")
            name = f"debiasbench_plugin_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]}"
            if name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(name, path.resolve())
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException as error:
                del sys.modules[name]  # a broken plugin must not count as loaded
                raise _plugin_error(plugin, error) from None
        else:
            try:
                importlib.import_module(plugin)
            except ModuleNotFoundError as error:
                if error.name and plugin.startswith(error.name):
                    raise PluginError(
                        f"plugin module {plugin!r} not found ({error}); pass a path to a .py file "
                        "(e.g. --plugin path/to/my_method.py) or a module importable from PYTHONPATH"
                    ) from None
                raise _plugin_error(plugin, error) from None
            except Exception as error:
                raise _plugin_error(plugin, error) from None


def _plugin_error(plugin: str, error: BaseException) -> BaseException:
    """One line for a plugin that fails while it is imported (KeyboardInterrupt passes through)."""
    if not isinstance(error, Exception):
        return error
    old = (getattr(error, "name", None) or "").split(".")[0]
    if isinstance(error, ImportError) and old in FOLDERS:
        # Installed, `methods` does not exist and `datasets` is Hugging Face's: name the new import.
        return PluginError(
            f"plugin {plugin!r} imports {error.name!r}, which is now {'debiasbench.' + error.name!r}: write "
            f"`from debiasbench.{old}... import ...` (the package has one import name since 0.2; "
            "docs/architecture.md)"
        )
    if isinstance(error, SyntaxError):
        return PluginError(
            f"plugin {plugin!r} has a syntax error at {error.filename}:{error.lineno}: {error.msg}; "
            "fix the file or drop --plugin"
        )
    import traceback

    frames = [f for f in traceback.extract_tb(error.__traceback__) if "importlib" not in f.filename]
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return PluginError(
        f"plugin {plugin!r} failed while loading{where}: {type(error).__name__}: {detail}; "
        "fix the plugin or drop --plugin"
    )
