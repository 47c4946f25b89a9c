"""``python -m sentiment_app`` is the same as the ``sentiment-app`` command."""

import sys

from sentiment_app.serve import main

sys.exit(main())
