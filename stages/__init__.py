"""Thin DVC entry points: `python -m stages.<name>` reads params, calls pipeline/, writes outputs."""
