-- Departures and cancellations at each origin over the 3 hours before each hour.
-- A departure is knowable when it leaves; a cancellation at its scheduled time.
-- Incremental builds read the day before the window too (for the 3 hours before
-- it) and keep the entities seen before:
-- incremental: raw 1 day, keys origin
-- snapshots: hourly
WITH events AS (
    SELECT origin, date_trunc('hour', knowable_at) AS bucket,
           (NOT cancelled)::INT AS departed, cancelled::INT AS cancelled,
           CASE WHEN cancelled THEN NULL ELSE dep_delay END AS dep_delay, knowable_at
    FROM departures
),
buckets AS (
    SELECT origin, bucket, sum(departed) AS departed, sum(cancelled) AS cancelled,
           sum(dep_delay) AS delay_sum, max(knowable_at) AS newest
    FROM events GROUP BY ALL
),
-- Entities seen before the raw data read: their grid starts where the window's
-- lookback does, which gives the same sums as starting at their first event.
keys AS (
    SELECT origin, min(first_bucket) AS first_bucket FROM (
        SELECT origin, min(bucket) AS first_bucket FROM buckets GROUP BY ALL
        UNION ALL
        SELECT origin,
               date_trunc('hour', $window_start::TIMESTAMPTZ) - INTERVAL 3 HOUR
        FROM previous_keys
    ) GROUP BY ALL
),
grid AS (
    SELECT k.first_bucket, k.origin, g.bucket
    FROM keys k,
         LATERAL (SELECT unnest(generate_series(k.first_bucket,
                                                date_trunc('hour', $window_end::TIMESTAMPTZ),
                                                INTERVAL 1 HOUR)) AS bucket) g
),
windowed AS (
    SELECT g.first_bucket, g.origin, g.bucket AS event_timestamp,
           sum(b.departed)  OVER w AS departed,
           sum(b.cancelled) OVER w AS cancelled,
           sum(b.delay_sum) OVER w AS delay_sum,
           max(b.newest)    OVER w AS newest
    FROM grid g LEFT JOIN buckets b USING (origin, bucket)
    WINDOW w AS (PARTITION BY g.origin ORDER BY g.bucket
                 ROWS BETWEEN 3 PRECEDING AND 1 PRECEDING)
)
-- A key's rows start at the snapshot after its first bucket. At the first bucket's own
-- instant the origin was not yet seen: the row would be written only by a build after
-- its first event, behind the online store's watermark, so the online store never
-- gets it, and point-in-time retrieval would answer 0 departures where serving has none.
SELECT
    origin,
    event_timestamp,
    event_timestamp                               AS created,
    coalesce(departed, 0)::BIGINT                 AS departures,
    coalesce(cancelled, 0)::BIGINT                AS cancellations,
    delay_sum / nullif(departed, 0)::DOUBLE       AS mean_dep_delay,
    epoch(newest)::BIGINT                         AS source_ts
FROM windowed
WHERE event_timestamp >= $window_start AND event_timestamp <= $window_end
  AND event_timestamp > first_bucket
