"""The ports the service layer depends on, one module per feature; adapters implement them.

Unit tests pass in-memory fakes of these (tests/unit/fakes.py); integration
tests run the real adapters (PostgreSQL, Redis, OpenSearch, S3) against real
servers.  Adapters map their vendor errors into ``domain.errors`` at their
edge, so nothing here mentions a vendor.  The value types they pass live in
the domain modules.
"""
