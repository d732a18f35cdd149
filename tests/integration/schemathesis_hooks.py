"""schemathesis hooks for test_api_conformance.py: the one request rule JSON Schema cannot state.

The document says it in words (`files` / `files_relative_paths_to_upload`): no two paths may name one
file once case is folded, nor may one be a folder of another. `uniqueItems` states only exact
duplicates, so a generated "valid" request may still list `a` and `A/b`, which the API rightly refuses
(400 path_collision). Such cases are not generated as valid ones; as invalid ones they stay.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from xnat_upload.manifest import find_collisions

PATH_LISTS = ("files", "files_relative_paths_to_upload")


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    if case.meta is None or not case.meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return True
    paths = next((case.body[name] for name in PATH_LISTS if isinstance(case.body.get(name), list)), [])
    return not find_collisions(p for p in paths if isinstance(p, str))
