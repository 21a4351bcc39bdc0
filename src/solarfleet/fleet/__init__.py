"""Units (products), their parts, entities and the types that describe them."""
