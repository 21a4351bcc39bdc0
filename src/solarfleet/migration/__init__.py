"""The telemetry migration and its per-unit bookkeeping (product_migration_history)."""
