"""`python -m drkonqi_lite`: the same as the `drkonqi-lite` command."""

import sys

from drkonqi_lite.launch import main

sys.exit(main())
