"""The application database: typed models, engine and session factory, migrations."""
