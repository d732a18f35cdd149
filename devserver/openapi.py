"""Write the API's OpenAPI document to functions/upload_api/openapi.json (`make openapi`)."""

from __future__ import annotations

import json
import os
import sys

from .handlers import ROOT, load_handler_module

TARGET = ROOT / "functions" / "upload_api" / "openapi.json"


def main() -> int:
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    document = json.loads(load_handler_module("upload_api").openapi_document())
    TARGET.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
