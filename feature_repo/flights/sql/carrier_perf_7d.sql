-- Each carrier's arrivals over the 7 days before each UTC midnight.
-- Arrivals are bucketed by day, then summed over the 7 preceding buckets of a
-- dense day grid, so the snapshot at D covers exactly [D - 7 days, D).
-- Incremental builds read 9 days of raw data (the window, plus a day for a
-- departure that precedes its arrival) and keep the entities seen before:
-- incremental: raw 9 days, keys carrier
-- snapshots: daily
WITH arrived AS (
    SELECT d.carrier, date_trunc('day', a.arr_ts) AS bucket, a.arr_delay, a.knowable_at
    FROM arrivals a JOIN departures d USING (flight_id)
),
buckets AS (
    SELECT carrier, bucket, count(*) AS n, sum((arr_delay > 15)::INT) AS late,
           sum(arr_delay) AS delay_sum, max(knowable_at) AS newest
    FROM arrived GROUP BY ALL
),
-- Entities seen before the raw data read: their grid starts where the window's
-- lookback does, which gives the same sums as starting at their first event.
keys AS (
    SELECT carrier, min(first_bucket) AS first_bucket FROM (
        SELECT carrier, min(bucket) AS first_bucket FROM buckets GROUP BY ALL
        UNION ALL
        SELECT carrier,
               date_trunc('day', $window_start::TIMESTAMPTZ) - INTERVAL 7 DAY
        FROM previous_keys
    ) GROUP BY ALL
),
grid AS (
    SELECT k.first_bucket, k.carrier, g.bucket
    FROM keys k,
         LATERAL (SELECT unnest(generate_series(k.first_bucket,
                                                date_trunc('day', $window_end::TIMESTAMPTZ),
                                                INTERVAL 1 DAY)) AS bucket) g
),
windowed AS (
    SELECT g.first_bucket, g.carrier, g.bucket AS event_timestamp,
           sum(b.n)         OVER w AS n,
           sum(b.late)      OVER w AS late,
           sum(b.delay_sum) OVER w AS delay_sum,
           max(b.newest)    OVER w AS newest
    FROM grid g LEFT JOIN buckets b USING (carrier, bucket)
    WINDOW w AS (PARTITION BY g.carrier ORDER BY g.bucket
                 ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING)
)
-- A key's rows start at the snapshot after its first bucket. At the first bucket's own
-- instant the carrier was not yet seen: the row would be written only by a build after
-- its first event, behind the online store's watermark, so the online store never
-- gets it, and point-in-time retrieval would answer 0 arrivals where serving has none.
SELECT
    carrier,
    event_timestamp,
    event_timestamp                           AS created,
    coalesce(n, 0)::BIGINT                    AS arrivals,
    late / n::DOUBLE                          AS late_share,
    delay_sum / n::DOUBLE                     AS mean_arr_delay,
    epoch(newest)::BIGINT                     AS source_ts
FROM windowed
WHERE event_timestamp >= $window_start AND event_timestamp <= $window_end
  AND event_timestamp > first_bucket
