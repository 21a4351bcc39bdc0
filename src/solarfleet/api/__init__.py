"""The HTTP layer: the query language, the generic resource layer and its registry."""
