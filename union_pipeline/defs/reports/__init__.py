"""Leadership charts and exports (图表与简报): scorecard, trends, streets, dashboard, briefing."""
