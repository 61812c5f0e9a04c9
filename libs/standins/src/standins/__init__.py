"""Local stand-ins that speak the real protocols of services we cannot run here.

Each module is an ASGI app plus ``python -m standins.<name> --port N``; ``standins.server`` runs
any of them on a real socket in a background thread for tests.
"""
