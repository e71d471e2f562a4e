//! The in-memory catalog the tests resolve names against.

use pgseal_sql::{Catalog, ColumnRef, EncryptedColumnInfo, LogicalType, TableRef};

/// `public.users(id, email enc searchable text, phone enc text, birth_date enc date, name)`,
/// `public.readings(id, user_id, body enc text)`, `other.users(id, email, name)` (plaintext),
/// `public.user_emails` (a view: id, email enc), `public.notes(id, body, user_id)` (plaintext),
/// `public.accounts(id, balance enc numeric, active enc bool, user_id)`.
/// `search_path` is `public` only.
pub struct TestCatalog {
    tables: Vec<TableRef>,
    /// Relations whose encrypted columns the session's open transaction declared.
    uncommitted: Vec<String>,
}

fn enc(id: u32, qualified: &str, ty: LogicalType, searchable: bool) -> Option<EncryptedColumnInfo> {
    Some(EncryptedColumnInfo {
        column_id: id,
        qualified_name: qualified.to_string(),
        logical_type: ty,
        searchable,
    })
}

fn table(
    oid: u32,
    schema: &str,
    name: &str,
    cols: Vec<(&str, Option<EncryptedColumnInfo>)>,
) -> TableRef {
    TableRef {
        oid,
        schema: schema.into(),
        name: name.into(),
        columns: cols
            .into_iter()
            .enumerate()
            .map(|(i, (name, encrypted))| ColumnRef {
                name: name.into(),
                attnum: i16::try_from(i + 1).expect("few columns"),
                encrypted,
            })
            .collect(),
    }
}

impl TestCatalog {
    /// The catalog described above.
    pub fn new() -> Self {
        let tables = vec![
            table(
                100,
                "public",
                "users",
                vec![
                    ("id", None),
                    (
                        "email",
                        enc(1, "public.users.email", LogicalType::Text, true),
                    ),
                    (
                        "phone",
                        enc(2, "public.users.phone", LogicalType::Text, false),
                    ),
                    (
                        "birth_date",
                        enc(3, "public.users.birth_date", LogicalType::Date, false),
                    ),
                    ("name", None),
                ],
            ),
            table(
                101,
                "public",
                "readings",
                vec![
                    ("id", None),
                    ("user_id", None),
                    (
                        "body",
                        enc(4, "public.readings.body", LogicalType::Text, false),
                    ),
                ],
            ),
            table(
                200,
                "other",
                "users",
                vec![("id", None), ("email", None), ("name", None)],
            ),
            table(
                300,
                "public",
                "user_emails",
                vec![
                    ("id", None),
                    (
                        "email",
                        enc(1, "public.user_emails.email", LogicalType::Text, true),
                    ),
                ],
            ),
            table(
                400,
                "public",
                "notes",
                vec![("id", None), ("body", None), ("user_id", None)],
            ),
            table(
                500,
                "public",
                "accounts",
                vec![
                    ("id", None),
                    (
                        "balance",
                        enc(5, "public.accounts.balance", LogicalType::Numeric, false),
                    ),
                    (
                        "active",
                        enc(6, "public.accounts.active", LogicalType::Bool, false),
                    ),
                    ("user_id", None),
                ],
            ),
            table(
                600,
                "public",
                "Mixed Case",
                vec![(
                    "Secret",
                    enc(7, "public.Mixed Case.Secret", LogicalType::Text, false),
                )],
            ),
        ];
        TestCatalog {
            tables,
            uncommitted: Vec::new(),
        }
    }

    /// The same catalog, in a session whose open transaction declared encrypted columns of
    /// `names`.
    #[allow(dead_code)]
    pub fn with_uncommitted(names: &[&str]) -> Self {
        TestCatalog {
            uncommitted: names.iter().map(|n| (*n).to_string()).collect(),
            ..TestCatalog::new()
        }
    }
}

impl Catalog for TestCatalog {
    fn resolve_table(&self, schema: Option<&str>, name: &str) -> Option<TableRef> {
        let schema = schema.unwrap_or("public");
        self.tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
            .cloned()
    }

    fn is_encrypted_table_name(&self, name: &str) -> bool {
        self.tables
            .iter()
            .any(|t| t.name == name && t.has_encrypted_columns())
    }

    fn uncommitted_encrypted(&self) -> &[String] {
        &self.uncommitted
    }
}
