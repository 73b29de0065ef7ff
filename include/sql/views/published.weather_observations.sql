-- published.weather_observations
-- Published weather per city (core.weather_observations): current conditions and forecasts, published by the
-- hour they were issued.
--
-- The current definition: migration 0010 (include/migrations/versions/0010_published_late_rows.py) last set it.
-- Migrations never read this file; to change the view, see include/sql/README.md.

CREATE OR REPLACE VIEW published.weather_observations AS
    SELECT w.source, w.city, w.country, w.lat, w.lon, w.kind, w.valid_at, w.issued_at, w.temp_c, w.feels_like_c,
           w.pressure_hpa, w.humidity_pct, w.wind_speed_ms, w.wind_deg, w.clouds_pct, w.rain_mm, w.condition,
           w.description, w.content_sha256, w.raw_response_id, w.dag_run_id, w.first_loaded_at, w.loaded_at
      FROM core.weather_observations w
      JOIN quality.publish_state p ON p.source = w.source AND coalesce(w.issued_at, w.valid_at) < p.published_until
      JOIN quality.hour_audits h
        ON h.source = w.source AND h.hour = date_bin('1 hour', coalesce(w.issued_at, w.valid_at), timestamptz '2000-01-01 00:00+00')
       AND w.loaded_at <= h.published_at;

COMMENT ON VIEW published.weather_observations IS 'Published weather per city (core.weather_observations): current conditions and forecasts, published by the hour they were issued.';
COMMENT ON COLUMN published.weather_observations.source IS 'Source system (openweathermap).';
COMMENT ON COLUMN published.weather_observations.city IS 'City as configured in include/sources.yaml.';
COMMENT ON COLUMN published.weather_observations.country IS 'ISO 3166 country code.';
COMMENT ON COLUMN published.weather_observations.lat IS 'Latitude of the city (degrees).';
COMMENT ON COLUMN published.weather_observations.lon IS 'Longitude of the city (degrees).';
COMMENT ON COLUMN published.weather_observations.kind IS 'current or forecast.';
COMMENT ON COLUMN published.weather_observations.valid_at IS 'The time the values describe (UTC).';
COMMENT ON COLUMN published.weather_observations.issued_at IS 'When the source computed the values (forecasts: fetch time); its hour is the audited hour (valid_at''s when NULL).';
COMMENT ON COLUMN published.weather_observations.temp_c IS 'Air temperature in degrees Celsius.';
COMMENT ON COLUMN published.weather_observations.feels_like_c IS 'Perceived temperature in degrees Celsius.';
COMMENT ON COLUMN published.weather_observations.pressure_hpa IS 'Sea-level air pressure in hPa.';
COMMENT ON COLUMN published.weather_observations.humidity_pct IS 'Relative humidity in percent.';
COMMENT ON COLUMN published.weather_observations.wind_speed_ms IS 'Wind speed in metres per second.';
COMMENT ON COLUMN published.weather_observations.wind_deg IS 'Wind direction in degrees (meteorological).';
COMMENT ON COLUMN published.weather_observations.clouds_pct IS 'Cloud cover in percent.';
COMMENT ON COLUMN published.weather_observations.rain_mm IS 'Rain volume in mm (last hour for current, 3 h for forecasts).';
COMMENT ON COLUMN published.weather_observations.condition IS 'Condition group (Rain, Clear, Clouds ...).';
COMMENT ON COLUMN published.weather_observations.description IS 'Condition in words (light rain ...).';
COMMENT ON COLUMN published.weather_observations.content_sha256 IS 'Hash of the loaded content.';
COMMENT ON COLUMN published.weather_observations.raw_response_id IS 'Lineage: the raw page this version came from.';
COMMENT ON COLUMN published.weather_observations.dag_run_id IS 'Lineage: the Airflow run that loaded this version.';
COMMENT ON COLUMN published.weather_observations.first_loaded_at IS 'When the row was first loaded.';
COMMENT ON COLUMN published.weather_observations.loaded_at IS 'When this version was loaded.';

GRANT SELECT ON published.weather_observations TO analyst;
