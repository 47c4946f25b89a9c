"""``sentiment-app``: read the settings from the environment and serve the app with waitress."""

from __future__ import annotations

import logging
import os
import signal
import sys

import waitress

from sentiment_app.settings import Settings, SettingsError
from sentiment_app.web import STATE_KEY, create_app

#: Open connections waitress keeps before it stops accepting; load tests open many.
CONNECTION_LIMIT = 1000


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as err:
        print(f"sentiment-app: {err}", file=sys.stderr)
        return 2
    app = create_app(settings)
    logging.getLogger("sentiment_app").info(
        "serving variant %s on http://%s:%d with %d threads; model-service %s (timeout %g s)",
        settings.variant,
        settings.host,
        settings.port,
        settings.threads,
        settings.model_service_url,
        settings.model_timeout_seconds,
    )
    try:
        server = waitress.create_server(
            app,
            host=settings.host,
            port=settings.port,
            threads=settings.threads,
            connection_limit=CONNECTION_LIMIT,
            asyncore_use_poll=True,
            ident="sentiment-app",
        )
    except OSError as err:
        print(
            f"sentiment-app: cannot listen on {settings.host}:{settings.port}: {err.strerror}\n"
            "Choose a free port with APP_PORT or stop what is using it.",
            file=sys.stderr,
        )
        return 1
    # As PID 1 of a container, SIGTERM is ignored unless handled: stop cleanly instead.
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.run()  # returns after SIGTERM or Ctrl-C, once the running requests finished
    finally:
        signal.signal(signal.SIGTERM, previous)
        app.extensions[STATE_KEY].client.close()
    return 0


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
