"""The city (市总工会): its targets and the districts side by side."""
