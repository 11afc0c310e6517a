-- 蓝领贷按月 — blue-collar loans by month since the scheme began: amount disbursed and new
-- borrowers (a borrower counts once, in the month of their first loan, as in
-- loan_borrowers_cum), up to the as-of date.
/* columns, as the warehouse describes them (COMMENT ON COLUMN):
month: 月份 — the month, as its first day (DATE)
amount_yuan: 放款金额（元）— amount disbursed in the month, yuan
new_borrowers: 新增贷款人数 — borrowers whose first loan was disbursed in the month (each counts once)
*/
WITH ctx AS (SELECT as_of FROM marts.refresh_context),
l AS (
    SELECT person_key, disbursed_date, CAST(amount_yuan AS DOUBLE) AS amount
    FROM staging.loans, ctx WHERE disbursed_date <= ctx.as_of
),
firsts AS (
    SELECT date_trunc('month', min(disbursed_date)) AS month
    FROM l WHERE person_key IS NOT NULL GROUP BY person_key
),
new_borrowers AS (
    SELECT month, CAST(count(*) AS DOUBLE) AS new_borrowers FROM firsts GROUP BY 1
),
amounts AS (
    SELECT date_trunc('month', disbursed_date) AS month, sum(amount) AS amount_yuan
    FROM l GROUP BY 1
)
SELECT CAST(month AS DATE) AS month,
       coalesce(a.amount_yuan, 0) AS amount_yuan,
       coalesce(b.new_borrowers, 0) AS new_borrowers
FROM amounts AS a FULL JOIN new_borrowers AS b USING (month)
ORDER BY month
