//! Session settings that change PostgreSQL's text output.

use jiff::tz::TimeZone;

use crate::error::ValueError;

/// How dates are printed (the first half of PostgreSQL's `DateStyle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DateOutputStyle {
    /// `2024-03-01 13:45:00+01`
    Iso,
    /// `03/01/2024 13:45:00 CET`
    Sql,
    /// `Fri Mar 01 13:45:00 2024 CET`
    Postgres,
    /// `01.03.2024 13:45:00 CET`
    German,
}

/// Order of day, month and year (the second half of `DateStyle`): used to read ambiguous input
/// such as `03/01/2024`, and by the SQL and Postgres output styles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DateOrder {
    /// Day, month, year.
    Dmy,
    /// Month, day, year.
    Mdy,
    /// Year, month, day.
    Ymd,
}

/// PostgreSQL's `DateStyle`: an output style and a field order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateStyle {
    /// How dates are printed.
    pub output: DateOutputStyle,
    /// How ambiguous numeric dates are read (and printed, in some styles).
    pub order: DateOrder,
}

impl Default for DateStyle {
    fn default() -> Self {
        DateStyle {
            output: DateOutputStyle::Iso,
            order: DateOrder::Mdy,
        }
    }
}

/// PostgreSQL's `bytea_output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ByteaOutput {
    /// `\x0102ff`
    #[default]
    Hex,
    /// `\001\002\377`
    Escape,
}

/// The session's `TimeZone`: the zone `timestamptz` values are shown in and plain local times
/// are read in.
#[derive(Clone, Debug)]
pub struct SessionTimeZone {
    name: String,
    rules: ZoneRules,
}

/// How a session zone maps instants to offsets.
#[derive(Clone, Debug)]
pub(crate) enum ZoneRules {
    /// IANA rules, through jiff.
    Tz(TimeZone),
    /// A POSIX zone without daylight saving: offset east of UTC in seconds and abbreviation.
    /// Kept out of jiff because PostgreSQL writes abbreviations like `<+05:30>` that jiff's
    /// POSIX parser does not accept.
    Fixed { offset: i32, abbrev: String },
}

impl PartialEq for SessionTimeZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl SessionTimeZone {
    /// UTC, PostgreSQL's usual default.
    pub fn utc() -> SessionTimeZone {
        SessionTimeZone {
            name: "UTC".to_owned(),
            rules: ZoneRules::Tz(TimeZone::UTC),
        }
    }

    /// Loads a zone as PostgreSQL reports it in `ParameterStatus`: an IANA name
    /// (`Europe/Paris`, `UTC`), or a POSIX string with a fixed offset (`<+03>-03`, which is what
    /// `SET TIME ZONE 3` reports). POSIX strings with daylight-saving rules are refused because
    /// PostgreSQL fills in missing rules from its own `posixrules`, which may differ.
    pub fn from_name(name: &str) -> Result<SessionTimeZone, ValueError> {
        let unsupported = || ValueError::UnsupportedSetting {
            name: "TimeZone".to_owned(),
            hint: "use an IANA zone name (Europe/Paris, UTC) or a fixed offset",
        };
        if name.is_empty() || name.len() > 255 || name.contains('\0') {
            return Err(unsupported());
        }
        let rules = match TimeZone::get(name) {
            Ok(tz) => ZoneRules::Tz(tz),
            Err(_) => {
                let (abbrev, offset) = parse_fixed_posix(name).ok_or_else(unsupported)?;
                ZoneRules::Fixed { offset, abbrev }
            }
        };
        Ok(SessionTimeZone {
            name: name.to_owned(),
            rules,
        })
    }

    /// The name the zone was loaded with.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn rules(&self) -> &ZoneRules {
        &self.rules
    }
}

impl Default for SessionTimeZone {
    fn default() -> Self {
        SessionTimeZone::utc()
    }
}

/// The session settings that change how values are read from and written as text.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSettings {
    /// `DateStyle`
    pub date_style: DateStyle,
    /// `TimeZone`
    pub time_zone: SessionTimeZone,
    /// `extra_float_digits`, -15..=3.
    pub extra_float_digits: i32,
    /// `bytea_output`
    pub bytea_output: ByteaOutput,
}

impl Default for SessionSettings {
    /// PostgreSQL's defaults with `TimeZone` UTC: `ISO, MDY`, `extra_float_digits` 1, hex bytea.
    fn default() -> Self {
        SessionSettings {
            date_style: DateStyle::default(),
            time_zone: SessionTimeZone::utc(),
            extra_float_digits: 1,
            bytea_output: ByteaOutput::Hex,
        }
    }
}

impl SessionSettings {
    /// Applies a `ParameterStatus` (or `SET`) value as PostgreSQL reports it.
    ///
    /// Understands `DateStyle` (`"ISO, MDY"`), `TimeZone` (`"Europe/Paris"`, `"UTC"`,
    /// `"<+03>-03"`), `extra_float_digits` (`"3"`) and `bytea_output` (`"hex"`, `"escape"`).
    /// Also checks settings under which the proxy's text would differ from the server's:
    /// `client_encoding` and `server_encoding` must be UTF8 and `integer_datetimes` on.
    /// Other parameters do not affect these types and are ignored. Names are case-insensitive.
    ///
    /// Returns [`ValueError::UnsupportedSetting`] for values it cannot honour; the settings are
    /// unchanged in that case.
    pub fn apply_parameter(&mut self, name: &str, value: &str) -> Result<(), ValueError> {
        let unsupported = |hint: &'static str| ValueError::UnsupportedSetting {
            name: name.to_owned(),
            hint,
        };
        match name.to_ascii_lowercase().as_str() {
            "datestyle" => {
                self.date_style = parse_date_style(self.date_style, value)
                    .ok_or_else(|| unsupported("expected e.g. \"ISO, MDY\""))?;
            }
            "timezone" => {
                self.time_zone = SessionTimeZone::from_name(value.trim())?;
            }
            "extra_float_digits" => {
                let digits: i32 = value
                    .trim()
                    .parse()
                    .map_err(|_| unsupported("expected an integer from -15 to 3"))?;
                if !(-15..=3).contains(&digits) {
                    return Err(unsupported("expected an integer from -15 to 3"));
                }
                self.extra_float_digits = digits;
            }
            "bytea_output" => {
                self.bytea_output = match value.trim().to_ascii_lowercase().as_str() {
                    "hex" => ByteaOutput::Hex,
                    "escape" => ByteaOutput::Escape,
                    _ => return Err(unsupported("expected hex or escape")),
                };
            }
            "client_encoding" | "server_encoding" => {
                let v = value.trim().to_ascii_lowercase().replace(['-', '_'], "");
                if v != "utf8" && v != "unicode" {
                    return Err(unsupported("encrypted columns need UTF8"));
                }
            }
            "integer_datetimes" if !value.trim().eq_ignore_ascii_case("on") => {
                return Err(unsupported("encrypted columns need integer_datetimes on"));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Reads a POSIX TZ string with a standard-time part only (`<+03>-03`, `<+05:30>-05:30`,
/// `UTC+3`): returns the abbreviation and the offset east of UTC in seconds. POSIX offsets count
/// west, so `UTC+3` is three hours behind UTC.
fn parse_fixed_posix(s: &str) -> Option<(String, i32)> {
    let (abbrev, rest) = if let Some(quoted) = s.strip_prefix('<') {
        let end = quoted.find('>')?;
        (&quoted[..end], &quoted[end + 1..])
    } else {
        let end = s
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(s.len());
        (&s[..end], &s[end..])
    };
    if abbrev.len() < 3
        || !abbrev
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-:".contains(&b))
    {
        return None;
    }
    let (west, rest) = match rest.as_bytes().first() {
        Some(b'-') => (false, &rest[1..]),
        Some(b'+') => (true, &rest[1..]),
        _ => (true, rest),
    };
    let fields: Vec<&str> = rest.split(':').collect();
    if fields.len() > 3
        || fields
            .iter()
            .any(|f| f.is_empty() || f.len() > 2 || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut secs: i32 = 0;
    for (k, f) in fields.iter().enumerate() {
        let v: i32 = f.parse().ok()?;
        if (k == 0 && v > 24) || (k > 0 && v > 59) {
            return None;
        }
        secs += v * [3600, 60, 1][k];
    }
    Some((abbrev.to_owned(), if west { -secs } else { secs }))
}

/// Parses a `DateStyle` value the way `check_datestyle` does, starting from `current`.
fn parse_date_style(current: DateStyle, value: &str) -> Option<DateStyle> {
    let mut output = None;
    let mut order = None;
    for token in value.split(',') {
        let token = token.trim().to_ascii_uppercase();
        match token.as_str() {
            "ISO" => output = Some(DateOutputStyle::Iso),
            "SQL" => output = Some(DateOutputStyle::Sql),
            "POSTGRES" => output = Some(DateOutputStyle::Postgres),
            "GERMAN" => {
                output = Some(DateOutputStyle::German);
                // GERMAN implies DMY unless an order is also given.
                if order.is_none() {
                    order = Some(DateOrder::Dmy);
                }
            }
            "YMD" => order = Some(DateOrder::Ymd),
            "DMY" | "EURO" | "EUROPEAN" => order = Some(DateOrder::Dmy),
            "MDY" | "US" | "NONEURO" | "NONEUROPEAN" => order = Some(DateOrder::Mdy),
            "DEFAULT" => {
                output = Some(DateOutputStyle::Iso);
                order = Some(DateOrder::Mdy);
            }
            _ => return None,
        }
    }
    Some(DateStyle {
        output: output.unwrap_or(current.output),
        order: order.unwrap_or(current.order),
    })
}
