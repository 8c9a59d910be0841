"""The dashboard in the Django admin: views, the overview, detail pages, history and traffic
charts, figures, time ranges, and its static files."""
