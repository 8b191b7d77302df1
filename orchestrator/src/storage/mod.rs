//! Storage on sea-orm: PostgreSQL for distributed mode, SQLite for embedded mode.
