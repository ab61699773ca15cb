"""easfast: a fast, failure-tolerant client for PAI-EAS model services."""
