-- 职工培训分项目 — training by programme and year: sessions, participations and distinct
-- persons, from the first reported year to the as-of date.
/* columns, as the warehouse describes them (COMMENT ON COLUMN):
year: 年度 — year of the session
program: 培训项目 — the programme: 吾意乐学, 学历提升, 雄镇杯技能竞赛 or 技能培训
sessions: 培训场次 — distinct sessions of the programme in the year
participations: 培训人次 — participation records
persons: 培训人数 — distinct persons who took part
*/
WITH ctx AS (SELECT as_of, first_year FROM marts.refresh_context)
SELECT CAST(year(session_date) AS INTEGER) AS year, program,
       CAST(count(DISTINCT session_id) AS DOUBLE) AS sessions,
       CAST(count(*) AS DOUBLE) AS participations,
       CAST(count(DISTINCT person_key) AS DOUBLE) AS persons
FROM staging.training, ctx
WHERE session_date <= ctx.as_of AND year(session_date) BETWEEN ctx.first_year AND year(ctx.as_of)
GROUP BY ALL
ORDER BY ALL
