"""Users, tokens, the permission ladder and scope."""
