"""Add-ons: PostgreSQL databases the platform runs for apps, attached as config vars.

The platform's PostgreSQL cluster (:mod:`corral.addons.cluster`) is a supervised service
like the API; each ``postgresql`` add-on is a database and a role of its own on it
(:mod:`corral.addons.provision`), attached to apps as ``DATABASE_URL`` (or another name),
backed up with ``pg_dump`` (:mod:`corral.addons.backups`).
"""
