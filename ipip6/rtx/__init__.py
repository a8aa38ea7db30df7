"""YAMAHA RTX support: config model (:mod:`.config`), CLI session (:mod:`.session`), the
``@rtx`` pyinfra connector (:mod:`.connector`) and facts (:mod:`.facts`).

Operations live in :mod:`operations.rtx`.
"""
