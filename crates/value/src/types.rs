//! Logical types of encrypted columns and their values.

use crate::numeric::Numeric;

/// The type of an encrypted column's values.
///
/// Stable tags: these numbers are stored inside every ciphertext (docs/format.md 2.1). Never
/// renumber.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogicalType {
    /// `boolean`
    Bool = 1,
    /// `smallint`
    Int2 = 2,
    /// `integer`
    Int4 = 3,
    /// `bigint`
    Int8 = 4,
    /// `real`
    Float4 = 5,
    /// `double precision`
    Float8 = 6,
    /// `numeric` (without a type modifier)
    Numeric = 7,
    /// `text`
    Text = 8,
    /// `character varying` (without a length limit)
    Varchar = 9,
    /// `bytea`
    Bytea = 10,
    /// `date`
    Date = 11,
    /// `time without time zone`
    Time = 12,
    /// `timestamp without time zone`
    Timestamp = 13,
    /// `timestamp with time zone`
    Timestamptz = 14,
    /// `uuid`
    Uuid = 15,
    /// `jsonb`
    Jsonb = 16,
}

impl LogicalType {
    /// Every logical type, in tag order.
    pub const ALL: [LogicalType; 16] = [
        LogicalType::Bool,
        LogicalType::Int2,
        LogicalType::Int4,
        LogicalType::Int8,
        LogicalType::Float4,
        LogicalType::Float8,
        LogicalType::Numeric,
        LogicalType::Text,
        LogicalType::Varchar,
        LogicalType::Bytea,
        LogicalType::Date,
        LogicalType::Time,
        LogicalType::Timestamp,
        LogicalType::Timestamptz,
        LogicalType::Uuid,
        LogicalType::Jsonb,
    ];

    /// The tag stored in ciphertext headers.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// The type with this ciphertext tag, if any.
    pub fn from_tag(tag: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.tag() == tag)
    }

    /// The PostgreSQL type OID.
    pub fn oid(self) -> u32 {
        match self {
            LogicalType::Bool => 16,
            LogicalType::Int2 => 21,
            LogicalType::Int4 => 23,
            LogicalType::Int8 => 20,
            LogicalType::Float4 => 700,
            LogicalType::Float8 => 701,
            LogicalType::Numeric => 1700,
            LogicalType::Text => 25,
            LogicalType::Varchar => 1043,
            LogicalType::Bytea => 17,
            LogicalType::Date => 1082,
            LogicalType::Time => 1083,
            LogicalType::Timestamp => 1114,
            LogicalType::Timestamptz => 1184,
            LogicalType::Uuid => 2950,
            LogicalType::Jsonb => 3802,
        }
    }

    /// The logical type of a PostgreSQL type OID, if it is one of ours.
    pub fn from_oid(oid: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.oid() == oid)
    }

    /// PostgreSQL's internal type name (`pg_type.typname`): `"bool"`, `"int2"`, ..., `"jsonb"`.
    pub fn sql_name(self) -> &'static str {
        match self {
            LogicalType::Bool => "bool",
            LogicalType::Int2 => "int2",
            LogicalType::Int4 => "int4",
            LogicalType::Int8 => "int8",
            LogicalType::Float4 => "float4",
            LogicalType::Float8 => "float8",
            LogicalType::Numeric => "numeric",
            LogicalType::Text => "text",
            LogicalType::Varchar => "varchar",
            LogicalType::Bytea => "bytea",
            LogicalType::Date => "date",
            LogicalType::Time => "time",
            LogicalType::Timestamp => "timestamp",
            LogicalType::Timestamptz => "timestamptz",
            LogicalType::Uuid => "uuid",
            LogicalType::Jsonb => "jsonb",
        }
    }

    /// The logical type named by `pg_type.typname` (case-insensitive), if any.
    pub fn from_sql_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.sql_name().eq_ignore_ascii_case(name))
    }

    /// Whether equal SQL values always have equal canonical encodings (after
    /// [`crate::index_input`]), so a blind index can answer `=`. Floats (`-0 = 0`) and jsonb
    /// have no such guarantee.
    pub fn supports_equality(self) -> bool {
        !matches!(
            self,
            LogicalType::Float4 | LogicalType::Float8 | LogicalType::Jsonb
        )
    }

    /// The binary length of fixed-size types (`pg_type.typlen`); `None` for variable-length
    /// ones.
    pub fn fixed_binary_len(self) -> Option<usize> {
        match self {
            LogicalType::Bool => Some(1),
            LogicalType::Int2 => Some(2),
            LogicalType::Int4 | LogicalType::Float4 | LogicalType::Date => Some(4),
            LogicalType::Int8
            | LogicalType::Float8
            | LogicalType::Time
            | LogicalType::Timestamp
            | LogicalType::Timestamptz => Some(8),
            LogicalType::Uuid => Some(16),
            LogicalType::Numeric
            | LogicalType::Text
            | LogicalType::Varchar
            | LogicalType::Bytea
            | LogicalType::Jsonb => None,
        }
    }

    /// The name PostgreSQL uses for the type in error messages.
    pub(crate) fn pg_display_name(self) -> &'static str {
        match self {
            LogicalType::Bool => "boolean",
            LogicalType::Int2 => "smallint",
            LogicalType::Int4 => "integer",
            LogicalType::Int8 => "bigint",
            LogicalType::Float4 => "real",
            LogicalType::Float8 => "double precision",
            LogicalType::Numeric => "numeric",
            LogicalType::Text => "text",
            LogicalType::Varchar => "character varying",
            LogicalType::Bytea => "bytea",
            LogicalType::Date => "date",
            LogicalType::Time => "time",
            LogicalType::Timestamp => "timestamp",
            LogicalType::Timestamptz => "timestamp with time zone",
            LogicalType::Uuid => "uuid",
            LogicalType::Jsonb => "jsonb",
        }
    }
}

/// A value of an encrypted column.
///
/// The `Debug` output prints the value itself. Values are plaintext of encrypted columns: never
/// log them (the proxy does not).
#[derive(Clone, PartialEq, Debug)]
pub enum Value {
    /// `boolean`
    Bool(bool),
    /// `smallint`
    Int2(i16),
    /// `integer`
    Int4(i32),
    /// `bigint`
    Int8(i64),
    /// `real`
    Float4(f32),
    /// `double precision`
    Float8(f64),
    /// `numeric`
    Numeric(Numeric),
    /// `text`: UTF-8 without NUL characters.
    Text(String),
    /// `character varying`: UTF-8 without NUL characters.
    Varchar(String),
    /// `bytea`
    Bytea(Vec<u8>),
    /// Days since 2000-01-01; `i32::MIN` / `i32::MAX` are `-infinity` / `infinity`, as in
    /// PostgreSQL.
    Date(i32),
    /// Microseconds since midnight, `0..=86_400_000_000` (`24:00:00` is a valid time).
    Time(i64),
    /// Microseconds since 2000-01-01 00:00:00; `i64::MIN` / `i64::MAX` are `-infinity` /
    /// `infinity`.
    Timestamp(i64),
    /// Microseconds since 2000-01-01 00:00:00 UTC; `i64::MIN` / `i64::MAX` are `-infinity` /
    /// `infinity`.
    Timestamptz(i64),
    /// `uuid`
    Uuid([u8; 16]),
    /// `jsonb`, as the normalised text PostgreSQL's `jsonb_out` prints.
    Jsonb(String),
}

impl Value {
    /// The value's logical type.
    pub fn logical_type(&self) -> LogicalType {
        match self {
            Value::Bool(_) => LogicalType::Bool,
            Value::Int2(_) => LogicalType::Int2,
            Value::Int4(_) => LogicalType::Int4,
            Value::Int8(_) => LogicalType::Int8,
            Value::Float4(_) => LogicalType::Float4,
            Value::Float8(_) => LogicalType::Float8,
            Value::Numeric(_) => LogicalType::Numeric,
            Value::Text(_) => LogicalType::Text,
            Value::Varchar(_) => LogicalType::Varchar,
            Value::Bytea(_) => LogicalType::Bytea,
            Value::Date(_) => LogicalType::Date,
            Value::Time(_) => LogicalType::Time,
            Value::Timestamp(_) => LogicalType::Timestamp,
            Value::Timestamptz(_) => LogicalType::Timestamptz,
            Value::Uuid(_) => LogicalType::Uuid,
            Value::Jsonb(_) => LogicalType::Jsonb,
        }
    }
}
