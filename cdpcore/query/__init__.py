"""The segment query language: parse SQL into IR, then plan, execute and reduce."""
