"""The HTTP edge (entry point layer): one Chalice blueprint per resource, and
what they share (endpoint, http, auth, openapi).  ``app.py`` registers them."""
