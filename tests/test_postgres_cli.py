"""The command line on PostgreSQL: every test of test_cli.py that uses a database, run on PostgreSQL.

test_cli.py's own tests run on SQLite; importing them here runs them again, unchanged, with
FALLBACK_DATABASE naming a fresh PostgreSQL database (see BACKENDS in conftest.py).
"""

import inspect

import test_cli

BACKENDS = ["postgres"]

db = test_cli.db
for _name, _test in vars(test_cli).items():
    if _name.startswith("test_") and "db" in inspect.signature(_test).parameters:
        globals()[_name] = _test
