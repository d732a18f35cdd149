"""`python -m xnat_upload.cli ...`: the same as the `xnat-upload` script."""

import sys

from .main import main

sys.exit(main())
