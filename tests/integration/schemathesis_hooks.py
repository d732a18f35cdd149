"""schemathesis hooks for test_api_conformance.py: the request rules JSON Schema cannot state.

The document says them in words, and the API rightly refuses what breaks them (400), so a request
that breaks one is not generated as a valid one; as invalid ones they stay:

* `files` / `files_relative_paths_to_upload`: no two paths may name one file once case is folded, nor
  may one be a folder of another. `uniqueItems` states only exact duplicates, so a "valid" request may
  still list `a` and `A/b` (400 path_collision).
* `GET /jobs?next=`: only a token a page handed out; any other string of its pattern is 400.
* `GET /jobs?since=`: the pattern cannot know calendars; `2026-02-31` matches it and is 400.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import schemathesis

from xnat_upload.manifest import find_collisions

PATH_LISTS = ("files", "files_relative_paths_to_upload")


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return True
    query = case.query if isinstance(case.query, dict) else {}
    if "next" in query or not _a_real_time(query.get("since")):
        return False
    if not isinstance(case.body, dict):
        return True
    paths = next((case.body[name] for name in PATH_LISTS if isinstance(case.body.get(name), list)), [])
    return not find_collisions(p for p in paths if isinstance(p, str))


def _a_real_time(since: object) -> bool:
    if not isinstance(since, str):
        return True
    try:
        datetime.fromisoformat(since.strip())
    except ValueError:
        return False
    return True
