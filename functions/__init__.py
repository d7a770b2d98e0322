"""Lambda handlers other than the HTTP API: thin Powertools handlers over services."""
