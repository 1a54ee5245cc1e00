-- Static aircraft attributes, published once with the first ingest.
-- snapshots: daily (one row per aircraft, at $static_known_since: a UTC midnight)
SELECT
    tailnum,
    $static_known_since::TIMESTAMPTZ            AS event_timestamp,
    $static_known_since::TIMESTAMPTZ            AS created,
    year_built,
    seats,
    engines,
    plane_type,
    engine_type,
    epoch($static_known_since::TIMESTAMPTZ)::BIGINT AS source_ts
FROM planes
WHERE $static_known_since::TIMESTAMPTZ >= $window_start
  AND $static_known_since::TIMESTAMPTZ <= $window_end
