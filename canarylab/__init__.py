"""canarylab: continuous-experimentation lab. Engine, reports, dashboard and CLI."""

__version__ = "0.1.0"
