"""corral: Heroku-style git push hosting for Python web apps, on a machine you own."""

__version__ = "0.1.0"
