"""The stages data flows through: ingest, generate, execute, inject, vote, check, curate, export."""
