"""``corral local``: a foreman-style Procfile runner for one app on this machine.

``plan`` decides what runs on which port, ``dotenv`` reads the ``.env`` config vars,
``manager`` starts the processes and stops them together, ``process`` is one child and
``printer`` prints their lines. The click commands are in :mod:`corral.cli.local`.
"""
