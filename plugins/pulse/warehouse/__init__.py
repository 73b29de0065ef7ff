"""The PostgreSQL warehouse: connections, migrations, raw page store and the loader."""
