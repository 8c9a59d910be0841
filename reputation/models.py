# Blocklists, listings, DSN statistics, spikes and alerts arrive with their issues.
