-- 职工培训分项目 — training by programme and year: sessions, participations and distinct
-- persons, from the first reported year to the as-of date.
WITH ctx AS (SELECT as_of, first_year FROM marts.refresh_context)
SELECT CAST(year(session_date) AS INTEGER) AS year, program,
       CAST(count(DISTINCT session_id) AS DOUBLE) AS sessions,
       CAST(count(*) AS DOUBLE) AS participations,
       CAST(count(DISTINCT person_key) AS DOUBLE) AS persons
FROM staging.training, ctx
WHERE session_date <= ctx.as_of AND year(session_date) BETWEEN ctx.first_year AND year(ctx.as_of)
GROUP BY ALL
ORDER BY ALL
