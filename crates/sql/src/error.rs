//! Why a statement is refused. Messages name columns and tables, never values: literals are
//! plaintext and must not reach logs or clients through an error.

use std::fmt;

use pgseal_value::LogicalType;

/// A refusal: the statement must not be forwarded.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// A use of an encrypted column that pgseal cannot carry out.
    #[error("encrypted column {column}: {reason}")]
    EncryptedColumn {
        /// `schema.table.column`.
        column: String,
        /// What is wrong.
        reason: Reason,
    },
    /// A value for an encrypted column is cast to a type other than the column's.
    #[error(
        "encrypted column {column} holds {} values, but the value is {found}; \
         cast it to {} or text, or remove the cast",
        .expected.sql_name(), .expected.sql_name()
    )]
    TypeMismatch {
        /// `schema.table.column`.
        column: String,
        /// The column's logical type.
        expected: LogicalType,
        /// What the value was given as (`cast to int4`, `a numeric literal`, ...).
        found: String,
    },
    /// One `$n` carries values for two different purposes.
    #[error(
        "parameter ${number} is used for both {first} and {second}; \
         pass the value as two separate parameters"
    )]
    ParameterConflict {
        /// The parameter number.
        number: u16,
        /// The first use (`public.users.email` or `a plaintext expression`).
        first: String,
        /// The conflicting use.
        second: String,
    },
    /// An array of a pgseal type, or a domain or composite type over one: the proxy recognises
    /// encrypted columns by their pgseal domain, so values of such a type would reach the
    /// server unencrypted.
    #[error(
        "{name}: {what} cannot be encrypted by the pgseal proxy, which recognises encrypted \
         columns by their pgseal type; declare each encrypted column with a pgseal type itself"
    )]
    PgsealTypeUse {
        /// The column or type as written.
        name: String,
        /// `an array of a pgseal type`, `a domain over a pgseal type`, ...
        what: String,
    },
    /// A statement refers to a relation with encrypted columns in a way pgseal does not analyse.
    #[error("statement refers to encrypted table {table}: {reason}")]
    EncryptedTable {
        /// The relation name as written in the statement.
        table: String,
        /// What is wrong.
        reason: Reason,
    },
}

impl SqlError {
    /// The SQLSTATE to report to the client: `0A000` (feature_not_supported) for computations
    /// on encrypted columns and unsupported constructs, `42804` (datatype_mismatch) for type
    /// mismatches, `42P08` (ambiguous_parameter), `42702` (ambiguous_column), `42601`
    /// (syntax_error) for text that does not parse.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            SqlError::TypeMismatch { .. } => "42804",
            SqlError::ParameterConflict { .. } => "42P08",
            SqlError::PgsealTypeUse { .. } => "0A000",
            SqlError::EncryptedColumn { reason, .. } | SqlError::EncryptedTable { reason, .. } => {
                reason.sqlstate()
            }
        }
    }

    /// The encrypted column concerned (`schema.table.column`), if the refusal is about one.
    pub fn column(&self) -> Option<&str> {
        match self {
            SqlError::EncryptedColumn { column, .. } | SqlError::TypeMismatch { column, .. } => {
                Some(column)
            }
            SqlError::ParameterConflict { .. }
            | SqlError::EncryptedTable { .. }
            | SqlError::PgsealTypeUse { .. } => None,
        }
    }

    /// The reason, for refusals that carry one.
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            SqlError::EncryptedColumn { reason, .. } | SqlError::EncryptedTable { reason, .. } => {
                Some(reason)
            }
            SqlError::TypeMismatch { .. }
            | SqlError::ParameterConflict { .. }
            | SqlError::PgsealTypeUse { .. } => None,
        }
    }
}

/// Why a use of an encrypted column or table is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// `enc = value`: needs the blind index.
    EqualitySearch,
    /// `enc = value` on a column without a blind index.
    NotSearchable,
    /// Equality between two encrypted columns (`a.email = b.email`, `JOIN ... USING`).
    ColumnEquality,
    /// An ordering or pattern comparison (`<`, `LIKE`, `BETWEEN`, `IN`, ...).
    Comparison {
        /// The operator as written (`<`, `LIKE`, ...).
        operator: String,
    },
    /// A function, operator, cast or other expression over the ciphertext.
    Computation {
        /// What would compute (`function lower()`, `operator ||`, `cast to text`, `CASE`).
        what: String,
    },
    /// An aggregate other than `count`.
    Aggregate {
        /// The aggregate's name.
        name: String,
    },
    /// `count(DISTINCT enc)`.
    CountDistinct,
    /// `PARTITION BY` / window `ORDER BY` on an encrypted column.
    Window,
    /// `ORDER BY enc`.
    OrderBy,
    /// `GROUP BY enc`.
    GroupBy,
    /// `DISTINCT` / `DISTINCT ON` over an encrypted column.
    Distinct,
    /// An encrypted column selected in a branch of `UNION` / `INTERSECT` / `EXCEPT`.
    SetOperation,
    /// The value would reach the client without a table origin in `RowDescription`.
    NoOrigin {
        /// What loses the origin (`a scalar subquery`, `RETURNING OLD/NEW`, ...).
        what: String,
    },
    /// A whole-row reference (`SELECT users FROM users`, `row_to_json(u)`, `(u).*`).
    WholeRow,
    /// An encrypted column used directly as a boolean condition.
    Condition,
    /// A value for an encrypted column that is not `$n`, a literal, `NULL` or `DEFAULT`.
    NotAValue,
    /// `INSERT ... SELECT` into an encrypted column.
    InsertSelect,
    /// Ciphertext of one column copied into another column or into a new table.
    CopiesCiphertext,
    /// A cast on a `$n` parameter for an encrypted column.
    ParameterCast,
    /// A cast with a type modifier on a literal for an encrypted column.
    TypeModifier,
    /// A subscript or field selection on an encrypted column.
    Subscript,
    /// An unqualified column name that more than one relation in scope has.
    Ambiguous {
        /// The column name.
        name: String,
    },
    /// `ON CONFLICT` with an encrypted column as arbiter.
    ConflictArbiter,
    /// A `UNIQUE` or `PRIMARY KEY` constraint on an encrypted column.
    UniqueConstraint {
        /// The table as written.
        table: String,
        /// The column.
        column: String,
    },
    /// A `$n` number outside 1..=65535.
    ParameterNumber,
    /// `COPY ... TO`/`FROM` a file or `PROGRAM` (the server would read or write data the proxy
    /// never sees).
    Copy,
    /// A `COPY` form or option the proxy does not carry on encrypted columns.
    CopyUnsupported {
        /// What is not supported (`COPY ... FROM ... WHERE`, `COPY option X`, ...).
        what: String,
    },
    /// `MERGE`.
    Merge,
    /// A `DEFAULT`, `GENERATED`, `CHECK` or `USING` expression on an encrypted column that
    /// PostgreSQL would evaluate on ciphertext, or that holds a constant (which would be kept
    /// in the catalog as plaintext).
    ColumnExpression {
        /// `DEFAULT`, `GENERATED`, `CHECK`, `USING`.
        what: String,
    },
    /// The relation's encrypted columns were declared, renamed or moved in a transaction that
    /// has not committed: the proxy's catalog does not show them yet, so it could not encrypt
    /// a value for them.
    Uncommitted,
    /// `CREATE TABLE AS`, `SELECT INTO`, `CREATE MATERIALIZED VIEW`.
    CreateTableAs,
    /// A temporary table or view with encrypted columns (a pgseal type, `LIKE`/`INHERITS` an
    /// encrypted table, a view reading one): the proxy's catalog connection cannot see another
    /// session's temporary relations, so it could neither encrypt nor decrypt their values.
    TemporaryTable,
    /// SQL-level `PREPARE`.
    Prepare,
    /// `DECLARE CURSOR`.
    Cursor,
    /// A body pgseal cannot see into (`DO`, `CREATE FUNCTION`).
    OpaqueBody {
        /// `DO block`, `function body`.
        what: String,
    },
    /// A construct this crate does not analyse, in a statement that may refer to an
    /// encrypted table.
    Unanalysed {
        /// The construct (`CALL`, `XMLELEMENT`, ...).
        construct: String,
    },
    /// The text does not parse and names an encrypted table.
    Unparseable,
}

impl Reason {
    /// The SQLSTATE of this reason.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Reason::Ambiguous { .. } => "42702",
            Reason::Unparseable => "42601",
            Reason::ParameterNumber => "42P02",
            _ => "0A000",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::EqualitySearch => f.write_str(
                "equality search on encrypted columns is not supported yet; \
                 filter on a plaintext column",
            ),
            Reason::NotSearchable => f.write_str(
                "equality search and indexes need a searchable column (a blind index); this \
                 column has none: declare it with the searchable domain of its type \
                 (pgseal.<type>_eq, pgseal.email or pgseal.phone) and re-encrypt it",
            ),
            Reason::ColumnEquality => f.write_str(
                "two encrypted columns cannot be compared: each column has its own keys, so \
                 equal values have unrelated ciphertexts and blind indexes; compare a column \
                 with a value ($n or a literal), or join on a plaintext key",
            ),
            Reason::Comparison { operator } => write!(
                f,
                "cannot compute on encrypted column: comparison with {operator} would compare \
                 ciphertext; filter on a plaintext column"
            ),
            Reason::Computation { what } => write!(
                f,
                "cannot compute on encrypted column: {what} would run on ciphertext; \
                 select the column itself and compute in the application"
            ),
            Reason::Aggregate { name } => write!(
                f,
                "cannot compute on encrypted column: aggregate {name}() would run on \
                 ciphertext; only count() is supported"
            ),
            Reason::CountDistinct => f.write_str(
                "count(DISTINCT ...) would count distinct ciphertexts, not distinct values",
            ),
            Reason::Window => f.write_str(
                "cannot compute on encrypted column: a window cannot partition or order by it",
            ),
            Reason::OrderBy => f.write_str(
                "cannot compute on encrypted column: ORDER BY would sort ciphertext; \
                 sort in the application",
            ),
            Reason::GroupBy => f.write_str(
                "cannot compute on encrypted column: GROUP BY would group ciphertexts, \
                 which differ for equal values",
            ),
            Reason::Distinct => f.write_str(
                "cannot compute on encrypted column: DISTINCT would compare ciphertexts, \
                 which differ for equal values",
            ),
            Reason::SetOperation => f.write_str(
                "UNION/INTERSECT/EXCEPT results have no column origin, so the proxy could not \
                 decrypt them; select encrypted columns outside the set operation",
            ),
            Reason::NoOrigin { what } => write!(
                f,
                "{what} returns the value without its table column origin, so the proxy \
                 could not decrypt it; select the column directly"
            ),
            Reason::WholeRow => f.write_str(
                "a whole-row reference would return the ciphertext inside a composite value; \
                 list the columns instead",
            ),
            Reason::Condition => {
                f.write_str("cannot compute on encrypted column: it cannot be used as a condition")
            }
            Reason::NotAValue => f.write_str(
                "a value for an encrypted column must be a $n parameter, a literal, \
                 NULL or DEFAULT",
            ),
            Reason::InsertSelect => f.write_str(
                "INSERT ... SELECT into an encrypted column is not supported; \
                 insert the values with parameters",
            ),
            Reason::CopiesCiphertext => f.write_str(
                "its ciphertext cannot be copied into another column or table \
                 (each column has its own key); read and write the values through the proxy",
            ),
            Reason::ParameterCast => f.write_str(
                "remove the cast on the parameter; the proxy types parameters for \
                 encrypted columns itself",
            ),
            Reason::TypeModifier => f.write_str(
                "casts with a type modifier (varchar(10), numeric(10,2)) are not supported \
                 on values for encrypted columns; remove the modifier",
            ),
            Reason::Subscript => f.write_str(
                "subscripts, field selections and per-field assignments are not supported \
                 on encrypted columns",
            ),
            Reason::Ambiguous { name } => write!(
                f,
                "column reference \"{name}\" is ambiguous; qualify it with its table"
            ),
            Reason::ConflictArbiter => f.write_str(
                "ON CONFLICT cannot use it as arbiter: ciphertexts of equal values differ; \
                 through the proxy, a searchable column with a unique index \
                 (CREATE UNIQUE INDEX ... ON t (col)) can be",
            ),
            Reason::UniqueConstraint { table, column } => write!(
                f,
                "a UNIQUE or PRIMARY KEY constraint would compare ciphertexts, which differ for \
                 equal values; declare the column searchable and create a unique index through \
                 the proxy: CREATE UNIQUE INDEX ON {table} ({column})"
            ),
            Reason::ParameterNumber => f.write_str("parameter number is out of range (1 to 65535)"),
            Reason::Copy => f.write_str(
                "COPY to or from a file or program would make the server read or write data \
                 the pgseal proxy never sees; use COPY ... FROM STDIN / TO STDOUT through the \
                 proxy (psql's \\copy)",
            ),
            Reason::CopyUnsupported { what } => write!(
                f,
                "{what} is not supported through the pgseal proxy on encrypted columns; \
                 see docs/operations.md (COPY)"
            ),
            Reason::ColumnExpression { what } => write!(
                f,
                "a {what} expression on an encrypted column would be evaluated by PostgreSQL on \
                 ciphertext, and a constant in it would be kept in the catalog as plaintext; \
                 only DEFAULT NULL and CHECK (column IS [NOT] NULL) are allowed: write values \
                 through the proxy instead"
            ),
            Reason::Uncommitted => f.write_str(
                "its encrypted columns were declared, renamed or moved in this transaction, \
                 which has not committed, and the pgseal proxy learns of them only at COMMIT: \
                 a value in this statement could not be encrypted and would reach the server \
                 as plaintext; commit the schema change first, then write (statements naming \
                 the table without constants or parameters are allowed)",
            ),
            Reason::Merge => f.write_str(
                "MERGE is not supported on relations with encrypted columns; \
                 use INSERT ... ON CONFLICT or UPDATE",
            ),
            Reason::CreateTableAs => f.write_str(
                "CREATE TABLE AS / SELECT INTO / materialized views would copy ciphertext \
                 into a relation pgseal does not manage",
            ),
            Reason::Prepare => f.write_str(
                "SQL-level PREPARE is not supported (the proxy could not encrypt the \
                 parameters of a later EXECUTE); use the extended query protocol",
            ),
            Reason::TemporaryTable => f.write_str(
                "temporary tables and views cannot have encrypted columns: the pgseal proxy \
                 cannot see a session's temporary relations; use a regular table or \
                 plaintext columns",
            ),
            Reason::Cursor => f.write_str(
                "DECLARE CURSOR over encrypted columns is not supported yet; \
                 use a plain SELECT",
            ),
            Reason::OpaqueBody { what } => write!(
                f,
                "the {what} refers to it and pgseal cannot analyse what it does; \
                 run it without the proxy"
            ),
            Reason::Unanalysed { construct } => write!(
                f,
                "{construct} is not analysed by pgseal; rewrite the statement without it"
            ),
            Reason::Unparseable => f.write_str(
                "the statement does not parse, and pgseal does not forward unparseable text \
                 that names an encrypted table; correct the syntax",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates() {
        let col = |reason| SqlError::EncryptedColumn {
            column: "public.users.email".into(),
            reason,
        };
        assert_eq!(col(Reason::OrderBy).sqlstate(), "0A000");
        assert_eq!(
            col(Reason::Ambiguous {
                name: "email".into()
            })
            .sqlstate(),
            "42702"
        );
        let mismatch = SqlError::TypeMismatch {
            column: "public.users.birth_date".into(),
            expected: LogicalType::Date,
            found: "cast to int4".into(),
        };
        assert_eq!(mismatch.sqlstate(), "42804");
        assert_eq!(mismatch.column(), Some("public.users.birth_date"));
        let text = mismatch.to_string();
        assert!(text.contains("holds date values"), "{text}");
    }
}
