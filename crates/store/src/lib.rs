//! The pgseal schema inside PostgreSQL: migrations, encrypted-column registry, wrapped data keys.
