"""Helpers the test modules share: waiting with a deadline, running the CLI, starting real
processes and servers, the dashboard's forms.

Test modules import from here (``from support.wait import wait_until``), never from each
other or from ``conftest``; ``conftest.py`` holds only fixtures. ``tests/`` is on
``sys.path`` through pytest's ``pythonpath`` setting, so ``support`` is a top-level package.
"""
