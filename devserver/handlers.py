"""Import the Lambda handlers exactly as Lambda does: repo root, handler folder and layer on sys.path."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "xnat_upload"
# Pollers invoke handlers from several threads: a module is published in sys.modules before it has
# finished executing, so without this a second thread could call a half-initialised handler.
_LOADING = threading.RLock()


# One handler loads at a time: the pollers' threads and the API server load theirs on first use, and two
# threads importing the same packages at once can be handed a partially initialised module.
_LOADING = threading.RLock()


def load_handler_module(function: str) -> ModuleType:
    """`functions/<function>/app.py` as a module named `<function>_app` (two `app`s must not clash)."""
    name = f"{function}_app"
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__loaded__", False):
        return loaded
    with _LOADING:
        loaded = sys.modules.get(name)
        if loaded is not None and getattr(loaded, "__loaded__", False):
            return loaded
        for path in (ROOT, LAYER):
            if str(path) not in sys.path:
                sys.path.insert(0, str(path))
        spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / function / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        module.__loaded__ = True  # type: ignore[attr-defined]
        return module
