"""The HTTP edge (entry point layer): the route table (``routes.py``), which binds
each path and method to a view of a resource module (``documents.py``, ``content.py``
…), and what the views share (endpoint, http, auth, openapi).  ``app.py`` registers it."""
