"""Queue shop_reco's Celery tasks from web processes, by name.

Importing the task modules imports the recompute pipeline and with it numpy, scipy and scikit-learn: over a
second, inside whichever request first queues a task (a first purchase, a full event buffer). With a broker
the message goes out by the task's registered name instead, and the web process never imports them.
"""

from __future__ import annotations

from typing import Any

FLUSH_EVENTS = "shop_reco.tasks.flush_events"
RECOMPUTE = "shop_reco.tasks.recompute"
UPDATE_SHOPPER = "shop_reco.tasks.update_shopper"
INDEX_NEW_PRODUCT = "shop_reco.tasks.index_new_product"


def celery_queues_tasks() -> bool:
    """True when queueing sends to a broker rather than running the task here and now."""
    from celery import current_app

    conf = current_app.conf
    return bool(conf.broker_url) and not conf.task_always_eager


def queue_task(name: str, *args: Any, **kwargs: Any) -> Any:
    """Queue the task registered as ``name``; returns its ``AsyncResult``.

    Eager Celery (the embedded default) runs the task here, so only then are the task modules imported.
    """
    from celery import current_app

    if celery_queues_tasks():
        return current_app.send_task(name, args=args, kwargs=kwargs)
    import shop_reco.tasks  # noqa: F401  (registers every shop_reco task with the app)

    return current_app.tasks[name].apply_async(args=args, kwargs=kwargs)
