"""gunicorn settings: `gunicorn -c config/gunicorn.py config.wsgi`. Environment:
POOLWARDEN_LISTEN (127.0.0.1:8000), WEB_CONCURRENCY (processes, 2), WEB_THREADS (4)."""

import os

bind = os.environ.get("POOLWARDEN_LISTEN", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"  # keep-alive for API clients
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
graceful_timeout = 10
timeout = 60


def post_worker_init(worker):
    # Load the routing snapshot (policy, pools, API tokens) as the worker starts, not at its
    # first request: a worker that had served nothing yet when the database went away would
    # otherwise have nothing to route on (503) for the whole outage.
    from django.db import DatabaseError

    from routing.engine import get_engine
    from routing.policy import PolicyUnavailable

    try:
        get_engine()
    except (DatabaseError, PolicyUnavailable) as exc:  # the refresher keeps trying
        worker.log.warning("routing snapshot not loaded at start: %s", exc)


def worker_exit(server, worker):
    # Flush the routing counters this worker kept in memory.
    from routing.engine import stop_engine

    stop_engine()
