"""Test-only helpers shared by the suites (no production code lives here)."""
