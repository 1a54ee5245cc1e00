-- Each aircraft's most recent completed flight, knowable when it lands.
-- A departure is knowable at most a day before its arrival:
-- incremental: raw 2 days
SELECT
    d.tailnum,
    a.arr_ts                         AS event_timestamp,
    a.knowable_at                    AS created,
    a.arr_delay                      AS arr_delay,
    epoch(a.arr_ts)::BIGINT          AS landed_at_epoch,
    epoch(a.knowable_at)::BIGINT     AS source_ts
FROM arrivals a JOIN departures d USING (flight_id)
WHERE d.tailnum IS NOT NULL
  AND a.arr_ts >= $window_start AND a.arr_ts <= $window_end
-- Two landings in the same instant cannot both be "the latest"; keep one, deterministically.
QUALIFY row_number() OVER (PARTITION BY d.tailnum, a.arr_ts ORDER BY a.flight_id DESC) = 1
