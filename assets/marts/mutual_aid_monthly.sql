-- 职工医疗互助按月 — mutual aid by month: enrolments by plan year and month enrolled
-- (month 0: enrolled before the plan year began, i.e. paid in advance), and paid benefits
-- by month of the claim, up to the as-of date.
/* columns, as the warehouse describes them (COMMENT ON COLUMN):
year: 年度 — plan year of the enrolments; calendar year of the claims
month: 月份 — 1-12; 0 = enrolled before the plan year began (paid in advance)
enrolments: 参保人次 — enrolments of the plan year enrolled in the month; empty when none
claims_paid: 补助笔数 — paid (已发放) claims dated in the month; empty when none
benefit_yuan: 补助金额（元）— benefits of those paid claims, yuan; empty when none
*/
WITH ctx AS (SELECT as_of FROM marts.refresh_context),
enrolments AS (
    SELECT CAST(plan_year AS INTEGER) AS year,
           CAST(CASE WHEN year(enrolled_date) < plan_year THEN 0
                     ELSE month(enrolled_date) END AS INTEGER) AS month,
           CAST(count(*) AS DOUBLE) AS enrolments
    FROM staging.mutual_aid_enrollments, ctx
    WHERE enrolled_date <= ctx.as_of AND year(enrolled_date) <= plan_year
      AND plan_year <= year(ctx.as_of)
    GROUP BY ALL
),
benefits AS (
    SELECT CAST(year(claim_date) AS INTEGER) AS year,
           CAST(month(claim_date) AS INTEGER) AS month,
           CAST(count(*) AS DOUBLE) AS claims_paid,
           CAST(sum(benefit_yuan) AS DOUBLE) AS benefit_yuan
    FROM staging.mutual_aid_claims, ctx
    WHERE status = '已发放' AND claim_date <= ctx.as_of
    GROUP BY ALL
)
SELECT year, month, e.enrolments, b.claims_paid, b.benefit_yuan
FROM enrolments AS e FULL JOIN benefits AS b USING (year, month)
ORDER BY year, month
