"""User plugins: extra method or dataset modules outside the repository, loaded by file path or
module name in the driver and in every Ray worker, so "a new method is one file" holds even
for a file that lives elsewhere (`run_all.py --plugin path/to/my_method.py`)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Iterable


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
            spec.loader.exec_module(module)
        else:
            importlib.import_module(plugin)
