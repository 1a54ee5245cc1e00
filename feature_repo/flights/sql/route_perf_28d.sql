-- Each origin-destination route's arrivals over the 28 days before each UTC midnight.
-- Incremental builds read 30 days of raw data (the window, plus a day for a
-- departure that precedes its arrival) and keep the entities seen before:
-- incremental: raw 30 days, keys origin, dest
-- snapshots: daily
WITH arrived AS (
    SELECT d.origin, d.dest, date_trunc('day', a.arr_ts) AS bucket, a.arr_delay, a.knowable_at
    FROM arrivals a JOIN departures d USING (flight_id)
),
buckets AS (
    SELECT origin, dest, bucket, count(*) AS n, sum((arr_delay > 15)::INT) AS late,
           sum(arr_delay) AS delay_sum, max(knowable_at) AS newest
    FROM arrived GROUP BY ALL
),
-- Entities seen before the raw data read: their grid starts where the window's
-- lookback does, which gives the same sums as starting at their first event.
keys AS (
    SELECT origin, dest, min(first_bucket) AS first_bucket FROM (
        SELECT origin, dest, min(bucket) AS first_bucket FROM buckets GROUP BY ALL
        UNION ALL
        SELECT origin, dest,
               date_trunc('day', $window_start::TIMESTAMPTZ) - INTERVAL 28 DAY
        FROM previous_keys
    ) GROUP BY ALL
),
grid AS (
    SELECT k.first_bucket, k.origin, k.dest, g.bucket
    FROM keys k,
         LATERAL (SELECT unnest(generate_series(k.first_bucket,
                                                date_trunc('day', $window_end::TIMESTAMPTZ),
                                                INTERVAL 1 DAY)) AS bucket) g
),
windowed AS (
    SELECT g.first_bucket, g.origin, g.dest, g.bucket AS event_timestamp,
           sum(b.n)         OVER w AS n,
           sum(b.late)      OVER w AS late,
           sum(b.delay_sum) OVER w AS delay_sum,
           max(b.newest)    OVER w AS newest
    FROM grid g LEFT JOIN buckets b USING (origin, dest, bucket)
    WINDOW w AS (PARTITION BY g.origin, g.dest ORDER BY g.bucket
                 ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING)
)
-- A key's rows start at the snapshot after its first bucket. At the first bucket's own
-- instant the route was not yet seen: the row would be written only by a build after
-- its first event, behind the online store's watermark, so the online store never
-- gets it, and point-in-time retrieval would answer 0 arrivals where serving has none.
SELECT
    origin,
    dest,
    event_timestamp,
    event_timestamp                           AS created,
    coalesce(n, 0)::BIGINT                    AS arrivals,
    late / n::DOUBLE                          AS late_share,
    delay_sum / n::DOUBLE                     AS mean_arr_delay,
    epoch(newest)::BIGINT                     AS source_ts
FROM windowed
WHERE event_timestamp >= $window_start AND event_timestamp <= $window_end
  AND event_timestamp > first_bucket
