"""Charts and leadership exports (plain Python: plotly, kaleido, pypdf, smtplib; no Dagster).

Typical use, on a read-only connection to the live warehouse::

    theme = load_theme()                       # assets/theme.yaml, UNION_LANG zh|en
    data = read_report_data(con)               # marts + monthly aggregates
    charts = build_charts(data, theme)         # plotly figures, reading order
    paths = export_paths(settings.export_dir, data.as_of)
    svgs = {c.slug: folder / f"{c.slug}.svg" for c in charts}   # the briefing's pages
    export_static(charts, paths, theme, svgs=svgs)  # a PNG per chart (+ SVGs), one batch
    write_dashboard(charts, paths.dashboard, data, theme)
    write_briefing(charts, svgs, paths.briefing, data, theme)   # one print, every page
    write_kpi_workbook(data, workbook_path(paths.root, data.as_of, theme), theme,
                       sources=..., reconciliation=read_reconciliation(con))
    write_problem_lists(quarantine, unions, paths.root, data.as_of, theme.lang)

or `export_reports(con, export_dir)` for all of it.
"""

from union_pipeline.reports.briefing import Briefing, cover_figure, mail_text, write_briefing
from union_pipeline.reports.dashboard import dashboard_html, write_dashboard
from union_pipeline.reports.data import ReportData, ReportDataError, read_report_data
from union_pipeline.reports.export import (
    ExportPaths,
    ReportRun,
    StaticExport,
    export_paths,
    export_reports,
    export_static,
    preview_markdown,
    preview_png,
)
from union_pipeline.reports.figures import (
    BUILDERS,
    Chart,
    TargetSummary,
    build_charts,
    target_summary,
)
from union_pipeline.reports.mail import (
    Attachment,
    MailResult,
    SmtpConfig,
    recipients_from_env,
    send_mail,
    smtp_config_from_env,
)
from union_pipeline.reports.privacy import SUPPRESSED_LABEL, street_values
from union_pipeline.reports.problems import (
    problem_list_path,
    safe_file_stem,
    write_problem_lists,
)
from union_pipeline.reports.render import (
    INSTALL_HINT,
    TEXT_FONT,
    find_browser,
    has_cjk_font,
    pdf_text_font,
    start_browser,
    static_export_problem,
)
from union_pipeline.reports.theme import Theme, ThemeError, current_lang, load_theme
from union_pipeline.reports.workbook import (
    read_reconciliation,
    workbook_path,
    write_kpi_workbook,
)

__all__ = [
    "BUILDERS",
    "INSTALL_HINT",
    "SUPPRESSED_LABEL",
    "TEXT_FONT",
    "Attachment",
    "Briefing",
    "Chart",
    "ExportPaths",
    "MailResult",
    "ReportData",
    "ReportDataError",
    "ReportRun",
    "SmtpConfig",
    "StaticExport",
    "TargetSummary",
    "Theme",
    "ThemeError",
    "build_charts",
    "cover_figure",
    "current_lang",
    "dashboard_html",
    "export_paths",
    "export_reports",
    "export_static",
    "find_browser",
    "has_cjk_font",
    "load_theme",
    "mail_text",
    "pdf_text_font",
    "preview_markdown",
    "preview_png",
    "problem_list_path",
    "read_reconciliation",
    "read_report_data",
    "recipients_from_env",
    "safe_file_stem",
    "send_mail",
    "smtp_config_from_env",
    "start_browser",
    "static_export_problem",
    "street_values",
    "target_summary",
    "workbook_path",
    "write_briefing",
    "write_dashboard",
    "write_kpi_workbook",
    "write_problem_lists",
]
