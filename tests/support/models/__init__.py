"""The models the pool tests serve, one module per pool kind.

Each model class sits at the top level of its module: a process pool's
workers and Ray's replicas import it by ``module:qualname`` in interpreters
of their own, and unpickle its ``Input`` and ``Output`` classes the same way.
"""
