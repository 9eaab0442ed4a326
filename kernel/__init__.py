"""kernel — the bottom layer of evhub: what every stage of the money path shares, and nothing that is a stage.

Settings, the database (engine, column types, migrations), every table (``kernel.models``, the stages'
included), money, energy and time, the outbox, security helpers, logging and metrics, the HTTP API helpers and
the in-process HTTP server, and the typed seams (``kernel.seams``, ``kernel.components``) through which the
stages hand work to each other. It imports no stage and no part of the assembly (``evhub``): the import-linter
contracts in ``pyproject.toml`` (``lint-imports``) check that.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("evhub")
except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
    __version__ = "0.0.0+unknown"
