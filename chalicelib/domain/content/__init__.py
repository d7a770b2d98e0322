"""Large content, pure (no network): where an upload's bytes live (``keys``), what
an upload may be (``policy``), what the bytes are (``inspect``, streaming) and
the text search gets from them (``extract``)."""
