"""``python -m model_service`` runs the same CLI as the ``model-service`` script."""

from __future__ import annotations

import sys

from model_service.cli import main

sys.exit(main())
