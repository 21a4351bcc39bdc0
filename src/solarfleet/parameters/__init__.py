"""Unit and part parameters: their tables, lifecycle and history."""
