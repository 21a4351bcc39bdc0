"""The fault tests borrow the migration tests' fixtures: units with uploads that went through
the real ingest path, a hot store, and an archive table of the test's own."""

from tests.migration.conftest import (  # noqa: F401 - fixtures, found by pytest by name
    archive,
    archive_settings,
    fleet,
    hot,
    hot_spec,
)
