//! The `pgseal.*` domains: declaring a column with one of them makes pgseal encrypt it.

pub use pgseal_value::LogicalType;

/// How a searchable domain normalises a value before computing its blind index
/// (docs/format.md 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexNormalization {
    /// The canonical plaintext as is.
    None,
    /// Unicode lower case of the trimmed text (`pgseal.email`).
    Lowercase,
    /// ASCII digits only (`pgseal.phone`).
    Digits,
}

/// One `pgseal.*` domain (a row of docs/format.md 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DomainSpec {
    /// The name inside schema `pgseal`, e.g. `"email"` for `pgseal.email`.
    pub name: &'static str,
    /// The type of the values, whose tag every ciphertext of this domain carries.
    pub logical_type: LogicalType,
    /// Whether ciphertexts carry a blind index (equality search).
    pub searchable: bool,
    /// The normalisation of the blind index input; `None` when not searchable.
    pub normalization: IndexNormalization,
}

impl DomainSpec {
    /// `pgseal.<name>`, as used in SQL.
    pub fn qualified_name(&self) -> String {
        format!("pgseal.{}", self.name)
    }
}

/// Every domain migration 0001 creates, in the order of docs/format.md 2.1.
pub const DOMAINS: &[DomainSpec] = &[
    DomainSpec {
        name: "bool",
        logical_type: LogicalType::Bool,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "bool_eq",
        logical_type: LogicalType::Bool,
        searchable: true,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "int2",
        logical_type: LogicalType::Int2,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "int2_eq",
        logical_type: LogicalType::Int2,
        searchable: true,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "int4",
        logical_type: LogicalType::Int4,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "int4_eq",
        logical_type: LogicalType::Int4,
        searchable: true,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "int8",
        logical_type: LogicalType::Int8,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "int8_eq",
        logical_type: LogicalType::Int8,
        searchable: true,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "float4",
        logical_type: LogicalType::Float4,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "float8",
        logical_type: LogicalType::Float8,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "numeric",
        logical_type: LogicalType::Numeric,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "numeric_eq",
        logical_type: LogicalType::Numeric,
        searchable: true,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "text",
        logical_type: LogicalType::Text,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "text_eq",
        logical_type: LogicalType::Text,
        searchable: true,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "email",
        logical_type: LogicalType::Text,
        searchable: true,
        normalization: IndexNormalization::Lowercase,
    },
    DomainSpec {
        name: "phone",
        logical_type: LogicalType::Text,
        searchable: true,
        normalization: IndexNormalization::Digits,
    },
    DomainSpec {
        name: "varchar",
        logical_type: LogicalType::Varchar,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "varchar_eq",
        logical_type: LogicalType::Varchar,
        searchable: true,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "bytea",
        logical_type: LogicalType::Bytea,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "bytea_eq",
        logical_type: LogicalType::Bytea,
        searchable: true,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "date",
        logical_type: LogicalType::Date,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "date_eq",
        logical_type: LogicalType::Date,
        searchable: true,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "time",
        logical_type: LogicalType::Time,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "time_eq",
        logical_type: LogicalType::Time,
        searchable: true,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "timestamp",
        logical_type: LogicalType::Timestamp,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "timestamp_eq",
        logical_type: LogicalType::Timestamp,
        searchable: true,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "timestamptz",
        logical_type: LogicalType::Timestamptz,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "timestamptz_eq",
        logical_type: LogicalType::Timestamptz,
        searchable: true,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "uuid",
        logical_type: LogicalType::Uuid,
        searchable: false,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "uuid_eq",
        logical_type: LogicalType::Uuid,
        searchable: true,
        normalization: IndexNormalization::None,
    },
    DomainSpec {
        name: "jsonb",
        logical_type: LogicalType::Jsonb,
        searchable: false,
        normalization: IndexNormalization::None,
    },
];

/// The domain named `name` inside schema `pgseal` (without the `pgseal.` prefix).
pub fn domain(name: &str) -> Option<&'static DomainSpec> {
    DOMAINS.iter().find(|spec| spec.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_a_domain_and_names_are_unique() {
        for logical_type in LogicalType::ALL {
            assert!(
                DOMAINS
                    .iter()
                    .any(|d| d.logical_type == logical_type && !d.searchable),
                "{logical_type:?} has a randomized domain"
            );
        }
        let mut names: Vec<_> = DOMAINS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DOMAINS.len());
        assert_eq!(DOMAINS.len(), 31);
    }

    #[test]
    fn searchability_follows_the_format() {
        for spec in DOMAINS {
            assert_eq!(
                spec.searchable,
                spec.name.ends_with("_eq") || spec.name == "email" || spec.name == "phone",
                "{}",
                spec.name
            );
            if !spec.searchable {
                assert_eq!(spec.normalization, IndexNormalization::None);
            }
        }
        // Binary equality differs from SQL equality for these, so no index (format.md 2.1).
        for unsearchable in [LogicalType::Float4, LogicalType::Float8, LogicalType::Jsonb] {
            assert!(DOMAINS
                .iter()
                .all(|d| d.logical_type != unsearchable || !d.searchable));
        }
        let email = domain("email").expect("email domain");
        assert_eq!(email.logical_type, LogicalType::Text);
        assert_eq!(email.normalization, IndexNormalization::Lowercase);
        assert_eq!(
            domain("phone").map(|d| d.normalization),
            Some(IndexNormalization::Digits)
        );
        assert_eq!(domain("int4_eq").map(|d| d.logical_type.tag()), Some(3));
        assert!(domain("pgseal.email").is_none());
        assert!(domain("float4_eq").is_none());
    }
}
