-- Hourly weather at each origin airport, knowable at the observation hour.
-- incremental: raw 0 days
SELECT
    origin,
    observed_at                    AS event_timestamp,
    knowable_at                    AS created,
    temp                           AS temp_f,
    dewp                           AS dewpoint_f,
    humid                          AS humidity_pct,
    wind_speed                     AS wind_speed_mph,
    wind_gust                      AS wind_gust_mph,
    precip                         AS precip_in,
    pressure                       AS pressure_mb,
    visib                          AS visibility_mi,
    epoch(knowable_at)::BIGINT     AS source_ts
FROM weather_observations
WHERE observed_at >= $window_start AND observed_at <= $window_end
