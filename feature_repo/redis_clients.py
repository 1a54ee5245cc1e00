"""Redis clients for the project's own keys (run lock, store marker, readiness), one
server or a Redis Cluster alike, and what counts as the online store being down.

Feast opens its own client from ``feature_store.yaml`` (``redis_type``); the
Materializer's lock and marker and the service's readiness check use the same
``Settings`` through :func:`open_redis`, so they always talk to the store Feast
writes to.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from feature_repo.settings import Settings

if TYPE_CHECKING:
    from redis import Redis
    from redis.cluster import RedisCluster


def open_redis(
    settings: Settings, connect_timeout: float = 2, socket_timeout: float = 5
) -> Redis | RedisCluster:
    """A client for ``settings``' Redis: ``redis.Redis`` or, for a cluster, ``RedisCluster``
    seeded with every configured node (any one that answers is enough)."""
    import redis

    if not settings.redis_url:
        raise ValueError("no REDIS_URL configured")
    options: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
    }
    if settings.redis_type != "redis_cluster":
        return redis.Redis.from_url(settings.redis_url, **options)
    from redis.cluster import ClusterNode, RedisCluster

    return RedisCluster.from_url(
        settings.redis_url,
        startup_nodes=[ClusterNode(host, port) for host, port in settings.redis_nodes()],
        **options,
    )


def is_outage(err: BaseException) -> bool:
    """True when ``err`` (or what caused it) means the store cannot answer right now:
    no connection, a timeout, or a cluster with slots unserved (a master died and its
    replica has not taken over yet)."""
    import redis
    from redis.exceptions import (
        ClusterDownError,
        MasterDownError,
        RedisClusterException,
        SlotNotCoveredError,
        TryAgainError,
    )

    outage = (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        ClusterDownError,
        MasterDownError,
        SlotNotCoveredError,
        TryAgainError,
        RedisClusterException,  # e.g. no node of the startup list answers
        ConnectionError,
        TimeoutError,
    )
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, outage):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def wait_for_replicas(settings: Settings, timeout_seconds: float = 10.0) -> bool:
    """On a cluster, wait until every master's replicas have acknowledged everything
    the master holds (replication offset caught up). True if they did in time.

    Redis replicates asynchronously: a write acknowledged by a master that then
    dies can be missing on the replica that takes over. The Materializer calls this
    before it moves watermarks, so a watermark never claims rows only a master had.
    On a single server it returns True at once.
    """
    if settings.redis_type != "redis_cluster":
        return True
    client = open_redis(settings)
    deadline = time.monotonic() + timeout_seconds
    try:
        primaries = client.get_primaries()  # type: ignore[union-attr]
        while True:
            # redis-py types a cluster's info() as the single-node one (no target_nodes).
            info: Any = client.info
            lagging = [
                node.name
                for node in primaries
                if not _replicas_caught_up(info("replication", target_nodes=node))
            ]
            if not lagging or time.monotonic() > deadline:
                return not lagging
            time.sleep(0.05)
    finally:
        client.close()


def _replicas_caught_up(info: dict[str, Any]) -> bool:
    offset = int(info.get("master_repl_offset", 0))
    replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    return all(
        replica.get("state") == "online" and int(replica.get("offset", -1)) >= offset
        for replica in replicas
    )
