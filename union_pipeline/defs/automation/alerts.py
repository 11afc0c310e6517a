"""Someone must hear when the nightly refresh fails: log it, and mail it when configured."""

import dagster as dg

from union_pipeline.assetkit.metadata import failed_asset
from union_pipeline.reports.mail import send_mail
from union_pipeline.settings import recipients, smtp_config


def failure_report(context: dg.RunFailureSensorContext) -> tuple[str, str]:
    """(subject, body) naming the run, the failed assets and their errors."""
    run = context.dagster_run
    failures = []
    for event in context.get_step_failure_events():
        data = event.event_specific_data
        error = data.error if data else None
        while error is not None and error.cause is not None:  # the user's error, not the wrapper
            error = error.cause
        asset = failed_asset(event.step_key, data)
        refusal = data.user_failure_data if data else None  # a refused file: its message alone
        if refusal is not None and refusal.description:
            message = refusal.description.strip()
        else:
            message = error.message.strip() if error else event.message
        failures.append(f"- {asset}: {message}")
    subject = f"【数据刷新失败】union-pipeline {run.job_name} run {run.run_id[:8]}"
    body = "\n".join(
        [
            f"Run {run.run_id} of job {run.job_name} failed.",
            "数据刷新失败，仓库保持上一次完整状态。The warehouse keeps its last complete state.",
            f"Tags: {dict(run.tags)}",
            "",
            "Failed assets and errors / 失败的资产及原因:",
            *(failures or [f"- {context.failure_event.message}"]),
        ]
    )
    return subject, body


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A failed run is logged and, with UNION_SMTP_* and UNION_ALERT_TO set, mailed. "
    "运行失败时记录日志并发送邮件告警。",
)
def refresh_failure_alert(context: dg.RunFailureSensorContext):
    subject, body = failure_report(context)
    context.log.error(f"{subject}\n{body}")
    if smtp_config() is None:
        return
    result = send_mail(subject, body, recipients("UNION_ALERT_TO"), logger=context.log)
    if not result.sent:
        context.log.error(f"failure alert not mailed: {result.summary}")
