"""Install and start the real servers that changehub's tests, demos and benchmarks use.

The command line is ``services/run`` (see ``services/README.md``); one module per server
(:mod:`services.postgres`, :mod:`services.mariadb`, :mod:`services.opensearch`,
:mod:`services.elasticsearch`, :mod:`services.kafka`) and shared helpers for processes
(:mod:`services.process`), state files (:mod:`services.state`), Debian packages
(:mod:`services.apt`) and Maven-resolved Java servers (:mod:`services.maven`,
:mod:`services.java`). Only the standard library is used, so a bare ``python3`` runs it.
"""
