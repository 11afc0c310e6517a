"""Mutual aid (职工医疗互助): enrolments and benefit claims."""

from union_pipeline.assetkit.staging import raw_source, staging_asset

enrollments = staging_asset("mutual_aid_enrollments")
claims = staging_asset("mutual_aid_claims")

raw_files = [raw_source("mutual_aid_enrollments"), raw_source("mutual_aid_claims")]
