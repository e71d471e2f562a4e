//! `COPY ... FROM STDIN` and `COPY ... TO STDOUT` on relations with encrypted columns.
//!
//! The statement's [`CopyPlan`] (from `pgseal-sql`) says which fields of each row are encrypted
//! and in which format rows travel. When the server answers the `COPY` with `CopyInResponse` or
//! `CopyOutResponse`, a [`RowCodec`] starts:
//!
//! * **In** (client → server): `CopyData` chunks are not row-aligned (psql sends about 8 KiB at
//!   a time; a CSV field may hold newlines inside quotes), so the codec keeps at most one partial
//!   row (capped at [`MAX_ROW`], PostgreSQL's own limit) and forwards each chunk's complete rows
//!   at once, rewritten: each encrypted field is read as its column's type with the session's
//!   settings, sealed with the column's active key, and written back as the `bytea` value in
//!   the same format (text `\\x<hex>`, CSV `\x<hex>`, binary the ciphertext and its length);
//!   `NULL` stays `NULL`, every other field passes byte for byte.
//! * **Out** (server → client): the same framing (PostgreSQL sends one row per `CopyData`, but
//!   nothing depends on it) opens each encrypted field, checking the ciphertext's column id as
//!   the result path does, and writes it in the client's format with the session's output
//!   settings. A plaintext field that carries a pgseal ciphertext is an error, never output.
//!
//! # Failures
//!
//! * A malformed row in (bad value for the column's type, wrong field count, bad escape,
//!   unterminated quote, invalid UTF-8 in an encrypted field): the proxy sends `CopyFail`
//!   upstream in place of the data, so the server aborts the `COPY` and nothing of it is
//!   committed; the client receives, in place of the server's answer to the `CopyFail`, an
//!   `ErrorResponse` shaped like PostgreSQL's (SQLSTATE `22P02`, `22P04`, `22021`, ..., a message
//!   naming the column, a `CONTEXT` `COPY t, line N, column c`), never the value; then
//!   `ReadyForQuery` as usual. The client's remaining copy messages are dropped.
//! * A value that fails to open out: the client receives an `ErrorResponse` (`XX001`) in place
//!   of the row, and nothing more of the `COPY` (no `CopyDone`, no `CommandComplete`) until
//!   `ReadyForQuery`: exactly what a server error in the middle of a `COPY TO` looks like, so
//!   libpq, tokio-postgres, psycopg and node-postgres report the error and stay usable.

use std::ops::Range;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use pgseal_sql::{
    Analysis, CopyColumn, CopyDirection, CopyFormat, CopyPlan, EncryptedColumnInfo, StatementKind,
};
use pgseal_value::{decode_binary, parse_text, SessionSettings, Value};
use pgseal_wire::backend::{CopyResponse, ErrorFields};
use pgseal_wire::frontend::CopyFail;
use pgseal_wire::Frame;

use super::catalog::{DbCatalog, HeldCatalog, SessionCatalog};
use super::hook::{build, carries_ciphertext, open_value, push_hex, seal, value_error, CORRUPTED};
use super::names::ByName;
use crate::session::{BackendVerdict, FrontendVerdict};

/// `CopyData` (both directions).
pub(crate) const COPY_DATA_TAG: u8 = pgseal_wire::frontend::COPY_DATA_TAG;
/// `CopyDone` (both directions).
pub(crate) const COPY_DONE_TAG: u8 = pgseal_wire::frontend::COPY_DONE_TAG;
/// `CopyFail` (client).
pub(crate) const COPY_FAIL_TAG: u8 = CopyFail::TAG;
/// `CopyInResponse`.
pub(crate) const COPY_IN_RESPONSE_TAG: u8 = CopyResponse::IN_TAG;
/// `CopyOutResponse`.
pub(crate) const COPY_OUT_RESPONSE_TAG: u8 = CopyResponse::OUT_TAG;
/// `CopyBothResponse`.
pub(crate) const COPY_BOTH_RESPONSE_TAG: u8 = CopyResponse::BOTH_TAG;

/// The largest row the proxy buffers, as PostgreSQL's own limit on a `COPY` line (1 GiB).
pub(crate) const MAX_ROW: usize = 1 << 30;
/// Stack for parsing the `COPY` statement (libpg_query recurses deeply).
const PARSE_STACK: usize = 16 << 20;
/// The binary `COPY` signature.
const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Marks the `CopyFail` the proxy sends; the server echoes it in its error.
const FAIL_MESSAGE: &str = "pgseal: a row could not be encrypted";

/// The [`CopyPlan`] of `sql`, when it is a `COPY` that touches encrypted columns.
pub(crate) fn plan_copy(
    sql: &str,
    catalog: &DbCatalog,
    search_path: &[String],
) -> Result<Option<Arc<CopyPlan>>, ErrorFields> {
    let session = SessionCatalog {
        catalog,
        search_path,
        // A COPY naming such a relation was refused by the statement's analysis.
        uncommitted: &[],
    };
    let planned = stacker::maybe_grow(PARSE_STACK, PARSE_STACK, || {
        pgseal_sql::analyze_copy(sql, &session)
    });
    match planned {
        Ok(plan) => Ok(plan.map(Arc::new)),
        Err(refusal) => {
            let fields = ErrorFields::error(refusal.sqlstate(), refusal.to_string());
            Err(match refusal.column() {
                Some(column) => fields.detail(format!("encrypted column: {column}")),
                None => fields,
            })
        }
    }
}

/// The [`CopyPlan`] of the statement `analysis` describes, when it is a `COPY` that touches
/// encrypted columns; such a `COPY` must be alone in its query string.
pub(crate) fn plan_for(
    sql: &str,
    analysis: &Analysis,
    catalog: &DbCatalog,
    search_path: &[String],
) -> Result<Option<Arc<CopyPlan>>, ErrorFields> {
    let copies = analysis
        .statements
        .iter()
        .any(|s| s.touches_encrypted && s.kind == StatementKind::Copy);
    if !copies {
        return Ok(None);
    }
    if analysis.statements.len() > 1 {
        return Err(ErrorFields::error(
            "0A000",
            "a COPY of encrypted columns must be the only statement of its query string",
        )
        .hint("send the COPY on its own"));
    }
    plan_copy(sql, catalog, search_path)
}

/// The `COPY` state of one session.
#[derive(Default)]
pub(crate) struct CopyState {
    /// The plan of the `COPY` sent to the server whose `Copy*Response` has not come yet.
    next: Option<Arc<CopyPlan>>,
    /// Plans of prepared `COPY` statements and portals, by name (extended protocol).
    statements: ByName<Arc<CopyPlan>>,
    portals: ByName<Arc<CopyPlan>>,
    active: Option<Active>,
    /// The error the client receives in place of the server's answer to the proxy's `CopyFail`.
    failure: Option<ErrorFields>,
}

enum Active {
    /// Rows from the client.
    In(Box<RowCodec>),
    /// The `COPY` must fail at the client's next copy message, with this error.
    InFailing(ErrorFields),
    /// The `COPY` failed: the client's copy messages are dropped until its `CopyDone` or
    /// `CopyFail`.
    InDropping,
    /// Rows from the server.
    Out(Box<RowCodec>),
}

impl CopyState {
    /// A `Parse` of statement `name` (accepted by the session's bookkeeping).
    pub(crate) fn on_parse(&mut self, name: &str, plan: Option<Arc<CopyPlan>>) {
        match plan {
            Some(plan) => {
                self.statements.insert(name, plan);
            }
            None => {
                self.statements.remove(name);
            }
        }
    }

    /// A `Bind` of `statement` into `portal`.
    pub(crate) fn on_bind(&mut self, statement: &str, portal: &str) {
        match self.statements.get(statement) {
            Some(plan) => {
                self.portals.insert(portal, Arc::clone(plan));
            }
            None => {
                self.portals.remove(portal);
            }
        }
    }

    /// An `Execute` of `portal`.
    pub(crate) fn on_execute(&mut self, portal: &str) {
        self.expect(self.portals.get(portal).cloned());
    }

    /// A `COPY` with encrypted columns was sent: its `Copy*Response` will start it.
    pub(crate) fn expect(&mut self, plan: Option<Arc<CopyPlan>>) {
        if plan.is_some() {
            self.next = plan;
        }
    }

    /// `ReadyForQuery`: whatever `COPY` the server ran is over. Rows the client still sends
    /// for a failed `COPY IN` stay dropped.
    pub(crate) fn on_ready(&mut self) {
        self.next = None;
        self.failure = None;
        if matches!(self.active, Some(Active::Out(_)) | Some(Active::In(_))) {
            self.active = None;
        }
    }

    /// An `ErrorResponse` from the server: the proxy's own error if it caused it with a
    /// `CopyFail`. Any `COPY` in progress is over.
    pub(crate) fn on_server_error(&mut self, frame: Frame) -> Result<BackendVerdict, ErrorFields> {
        // If the server failed on its own (a constraint, ...), the client keeps sending until
        // it notices; nothing more needs encrypting.
        if let Some(Active::In(_) | Active::InFailing(_) | Active::InDropping) = self.active.take()
        {
            self.active = Some(Active::InDropping);
        }
        match self.failure.take() {
            Some(fields) => Ok(BackendVerdict::Replace(vec![error_frame(&fields)?])),
            None => Ok(BackendVerdict::Forward(frame)),
        }
    }

    /// `CopyInResponse`, `CopyOutResponse` or `CopyBothResponse`.
    pub(crate) fn on_copy_response(&mut self, frame: Frame) -> Result<BackendVerdict, ErrorFields> {
        self.active = None;
        let Some(plan) = self.next.take() else {
            // A COPY of a relation without encrypted columns: byte for byte.
            return Ok(BackendVerdict::Forward(frame));
        };
        let response = CopyResponse::decode(&frame.body).map_err(|e| {
            ErrorFields::error(
                "08P01",
                format!("the pgseal proxy cannot read the server's message: {e}"),
            )
        })?;
        let expected_binary = plan.options.format == CopyFormat::Binary;
        let mismatch = if response.column_formats.len() != plan.columns.len() {
            Some(format!(
                "the server copies {} columns, but pgseal expected {} (generated or dropped \
                 columns?)",
                response.column_formats.len(),
                plan.columns.len()
            ))
        } else if (response.format == 1) != expected_binary {
            Some("the server chose another COPY format than the statement names".to_owned())
        } else {
            None
        };
        let direction = match frame.tag {
            CopyResponse::IN_TAG => CopyDirection::In,
            CopyResponse::OUT_TAG => CopyDirection::Out,
            _ => {
                return Err(ErrorFields::error(
                    "0A000",
                    "COPY BOTH is not supported on encrypted columns by the pgseal proxy",
                ))
            }
        };
        let mismatch = mismatch.or_else(|| {
            (direction != plan.direction)
                .then(|| "the server copies in the other direction".to_owned())
        });
        if let Some(why) = mismatch {
            let fields = ErrorFields::error(
                "0A000",
                format!(
                    "the pgseal proxy cannot carry this COPY of {}: {why}",
                    plan.relation
                ),
            )
            .hint("name the columns to copy explicitly");
            return match direction {
                CopyDirection::In => {
                    // The client is told at its first copy message, which the proxy turns into
                    // a CopyFail.
                    self.active = Some(Active::InFailing(fields));
                    Ok(BackendVerdict::Forward(frame))
                }
                CopyDirection::Out => Err(fields),
            };
        }
        let codec = Box::new(RowCodec::new(plan));
        self.active = Some(match direction {
            CopyDirection::In => Active::In(codec),
            CopyDirection::Out => Active::Out(codec),
        });
        Ok(BackendVerdict::Forward(frame))
    }

    /// `CopyData` or `CopyDone` from the server.
    pub(crate) fn on_server_data(
        &mut self,
        frame: Frame,
        catalog: Result<HeldCatalog, ErrorFields>,
        settings: &SessionSettings,
    ) -> Result<BackendVerdict, ErrorFields> {
        let Some(Active::Out(codec)) = self.active.as_mut() else {
            return Ok(BackendVerdict::Forward(frame));
        };
        let catalog = catalog?;
        let mut out = BytesMut::new();
        let result = if frame.tag == COPY_DONE_TAG {
            codec.finish(&catalog, settings, &mut out)
        } else {
            codec.feed(&frame.body, &catalog, settings, &mut out)
        };
        if let Err(fields) = result {
            self.active = None;
            return Err(fields);
        }
        let mut frames = Vec::with_capacity(2);
        if !out.is_empty() {
            frames.push(Frame::new(COPY_DATA_TAG, out.freeze()));
        }
        if frame.tag == COPY_DONE_TAG {
            self.active = None;
            frames.push(frame);
        }
        Ok(BackendVerdict::Replace(frames))
    }

    /// `CopyData`, `CopyDone` or `CopyFail` from the client.
    pub(crate) fn on_client_data(
        &mut self,
        frame: Frame,
        catalog: Result<HeldCatalog, ErrorFields>,
        settings: &SessionSettings,
    ) -> FrontendVerdict {
        let end = frame.tag != COPY_DATA_TAG;
        match self.active.take() {
            None => FrontendVerdict::Forward(frame),
            Some(Active::Out(codec)) => {
                self.active = Some(Active::Out(codec));
                FrontendVerdict::Forward(frame)
            }
            Some(Active::InDropping) => {
                if !end {
                    self.active = Some(Active::InDropping);
                }
                FrontendVerdict::Replace(Vec::new())
            }
            Some(Active::InFailing(fields)) => self.fail(fields, end),
            Some(Active::In(mut codec)) => {
                if frame.tag == CopyFail::TAG {
                    // The client gives up: its own message reaches the server.
                    return FrontendVerdict::Forward(frame);
                }
                let catalog = match catalog {
                    Ok(catalog) => catalog,
                    Err(fields) => return self.fail(fields, end),
                };
                let mut out = BytesMut::new();
                let result = if end {
                    codec.finish(&catalog, settings, &mut out)
                } else {
                    codec.feed(&frame.body, &catalog, settings, &mut out)
                };
                if let Err(fields) = result {
                    return self.fail(fields, end);
                }
                let mut frames = Vec::with_capacity(2);
                if !out.is_empty() {
                    frames.push(Frame::new(COPY_DATA_TAG, out.freeze()));
                }
                if end {
                    frames.push(frame);
                } else {
                    self.active = Some(Active::In(codec));
                }
                FrontendVerdict::Replace(frames)
            }
        }
    }

    /// Aborts the `COPY IN` upstream; `fields` reaches the client in place of the server's
    /// error.
    fn fail(&mut self, fields: ErrorFields, client_done: bool) -> FrontendVerdict {
        self.failure = Some(fields);
        if !client_done {
            self.active = Some(Active::InDropping);
        }
        let mut buf = BytesMut::new();
        let encoded = CopyFail {
            message: FAIL_MESSAGE.to_owned(),
        }
        .encode(&mut buf);
        match (encoded, buf.len() > 5) {
            (Ok(()), true) => {
                let body = buf.split_off(5).freeze();
                FrontendVerdict::Replace(vec![Frame::new(CopyFail::TAG, body)])
            }
            // Cannot happen with a fixed message; dropping the data still fails closed.
            _ => FrontendVerdict::Replace(Vec::new()),
        }
    }
}

fn error_frame(fields: &ErrorFields) -> Result<Frame, ErrorFields> {
    build(|buf| fields.encode(pgseal_wire::backend::ERROR_RESPONSE_TAG, buf))
}

/// Where the scan for the end of the current row stands (text and CSV).
#[derive(Default, Clone, Copy)]
struct Scan {
    pos: usize,
    /// Text: the previous byte was an escaping backslash.
    escaped: bool,
    /// CSV: inside quotes.
    in_quote: bool,
    /// CSV: the previous byte inside quotes was an escape character.
    last_was_esc: bool,
}

/// One field of a row: its raw bytes and, in CSV, whether it was quoted.
#[derive(Clone)]
struct Field {
    raw: Range<usize>,
    quoted: bool,
}

/// Frames rows in a `COPY` stream and rewrites their encrypted fields.
pub(crate) struct RowCodec {
    plan: Arc<CopyPlan>,
    direction: CopyDirection,
    pending: BytesMut,
    scan: Scan,
    /// Rows (lines) seen, for error contexts; the header counts, as in PostgreSQL.
    line: u64,
    /// Text/CSV: the first line is a header still to pass. Binary: the file header is still
    /// to come.
    header_pending: bool,
    /// The end-of-data marker (`\.`, or the binary trailer) was seen: the rest passes as is.
    ended: bool,
    fields: Vec<Field>,
}

impl RowCodec {
    fn new(plan: Arc<CopyPlan>) -> Self {
        let header_pending = plan.options.header || plan.options.format == CopyFormat::Binary;
        Self {
            direction: plan.direction,
            plan,
            pending: BytesMut::new(),
            scan: Scan::default(),
            line: 0,
            header_pending,
            ended: false,
            fields: Vec::new(),
        }
    }

    fn context(&self, column: Option<&str>) -> String {
        match column {
            Some(c) => format!(
                "COPY {}, line {}, column {c}",
                self.plan.relation, self.line
            ),
            None => format!("COPY {}, line {}", self.plan.relation, self.line),
        }
    }

    fn error(
        &self,
        sqlstate: &str,
        message: impl Into<String>,
        column: Option<&str>,
    ) -> ErrorFields {
        ErrorFields::error(sqlstate, message).with(b'W', self.context(column))
    }

    /// Takes a chunk of the stream and appends the rewritten complete rows to `out`.
    fn feed(
        &mut self,
        chunk: &[u8],
        catalog: &DbCatalog,
        settings: &SessionSettings,
        out: &mut BytesMut,
    ) -> Result<(), ErrorFields> {
        if self.ended {
            out.extend_from_slice(chunk);
            return Ok(());
        }
        self.pending.extend_from_slice(chunk);
        self.drain(catalog, settings, out)?;
        if self.pending.len() > MAX_ROW {
            return Err(self.error(
                "54000",
                "a COPY row is longer than 1 GiB, PostgreSQL's limit",
                None,
            ));
        }
        Ok(())
    }

    /// The stream ended: a last row without a line end is still a row (as in PostgreSQL).
    fn finish(
        &mut self,
        catalog: &DbCatalog,
        settings: &SessionSettings,
        out: &mut BytesMut,
    ) -> Result<(), ErrorFields> {
        if self.ended || self.pending.is_empty() {
            return Ok(());
        }
        match self.plan.options.format {
            CopyFormat::Binary => {
                self.line += 1;
                Err(self.error("22P04", "unexpected EOF in COPY data", None))
            }
            format => {
                if format == CopyFormat::Csv && self.scan_row().is_none() && self.scan.in_quote {
                    self.line += 1;
                    return Err(self.error("22P04", "unterminated CSV quoted field", None));
                }
                let row = std::mem::take(&mut self.pending);
                self.row(&row, catalog, settings, out)
            }
        }
    }

    fn drain(
        &mut self,
        catalog: &DbCatalog,
        settings: &SessionSettings,
        out: &mut BytesMut,
    ) -> Result<(), ErrorFields> {
        loop {
            if self.ended {
                out.extend_from_slice(&self.pending);
                self.pending.clear();
                return Ok(());
            }
            let complete = match self.plan.options.format {
                CopyFormat::Binary => self.binary_unit(catalog, settings, out)?,
                _ => match self.scan_row() {
                    Some(end) => {
                        // The line end is not part of the row.
                        let row = self.pending.split_to(end + 1);
                        self.scan = Scan::default();
                        self.row(&row[..end], catalog, settings, out)?;
                        true
                    }
                    None => false,
                },
            };
            if !complete {
                return Ok(());
            }
        }
    }

    /// The index of the `\n` that ends the first row of `pending`, scanning on from where the
    /// last call stopped.
    fn scan_row(&mut self) -> Option<usize> {
        let csv = self.plan.options.format == CopyFormat::Csv;
        let quote = self.plan.options.quote;
        // As PostgreSQL's line reader: an escape equal to the quote is just a toggle.
        let escape = Some(self.plan.options.escape).filter(|e| *e != quote);
        let bytes = &self.pending[..];
        let mut s = self.scan;
        while s.pos < bytes.len() {
            let c = bytes[s.pos];
            if csv {
                if s.in_quote && Some(c) == escape {
                    s.last_was_esc = !s.last_was_esc;
                }
                if c == quote && !s.last_was_esc {
                    s.in_quote = !s.in_quote;
                }
                if Some(c) != escape {
                    s.last_was_esc = false;
                }
                if c == b'\n' && !s.in_quote {
                    self.scan = Scan::default();
                    return Some(s.pos);
                }
            } else if s.escaped {
                s.escaped = false;
            } else if c == b'\\' {
                s.escaped = true;
            } else if c == b'\n' {
                self.scan = Scan::default();
                return Some(s.pos);
            }
            s.pos += 1;
        }
        self.scan = s;
        None
    }

    /// One text or CSV row, without its `\n`.
    fn row(
        &mut self,
        row: &[u8],
        catalog: &DbCatalog,
        settings: &SessionSettings,
        out: &mut BytesMut,
    ) -> Result<(), ErrorFields> {
        self.line += 1;
        let row = row.strip_suffix(b"\r").unwrap_or(row);
        if row == b"\\." {
            // End of data: PostgreSQL ignores whatever follows.
            self.ended = true;
            out.extend_from_slice(b"\\.\n");
            return Ok(());
        }
        if std::mem::take(&mut self.header_pending) {
            out.extend_from_slice(row);
            out.put_u8(b'\n');
            return Ok(());
        }
        let csv = self.plan.options.format == CopyFormat::Csv;
        if csv {
            self.split_csv(row)?;
        } else {
            self.split_text(row)?;
        }
        let expected = self.plan.columns.len();
        if self.fields.len() < expected {
            let missing = &self.plan.columns[self.fields.len()].name;
            return Err(self.error(
                "22P04",
                format!("missing data for column \"{missing}\""),
                None,
            ));
        }
        if self.fields.len() > expected {
            return Err(self.error("22P04", "extra data after last expected column", None));
        }
        let plan = Arc::clone(&self.plan);
        let delimiter = plan.options.delimiter;
        let fields = std::mem::take(&mut self.fields);
        for (i, (field, column)) in fields.iter().zip(&plan.columns).enumerate() {
            if i > 0 {
                out.put_u8(delimiter);
            }
            let raw = &row[field.raw.clone()];
            match &column.encrypted {
                None => {
                    if self.direction == CopyDirection::Out {
                        self.check_plain(raw, field.quoted, column)?;
                    }
                    out.extend_from_slice(raw);
                }
                Some(info) => {
                    let value = if csv {
                        self.csv_value(raw, field.quoted, column)
                    } else {
                        self.text_value(raw)
                    };
                    match value {
                        None => out.extend_from_slice(raw),
                        Some(bytes) => match self.direction {
                            CopyDirection::In => {
                                let sealed =
                                    self.seal_text(&bytes, info, column, catalog, settings)?;
                                let mut text = String::with_capacity(2 + sealed.len() * 2);
                                text.push_str("\\x");
                                push_hex(&mut text, &sealed);
                                if csv {
                                    self.put_csv(out, text.as_bytes(), false, false);
                                } else {
                                    // The bytea's backslash is escaped in the text format.
                                    out.put_u8(b'\\');
                                    out.extend_from_slice(text.as_bytes());
                                }
                            }
                            CopyDirection::Out => {
                                let text = self.open(&bytes, false, column, catalog, settings)?;
                                if csv {
                                    let single = plan.columns.len() == 1;
                                    self.put_csv(out, &text, column.force_quote, single);
                                } else {
                                    put_text(out, &text, delimiter);
                                }
                            }
                        },
                    }
                }
            }
        }
        self.fields = fields;
        out.put_u8(b'\n');
        Ok(())
    }

    /// Splits a text-format row at unescaped delimiters.
    fn split_text(&mut self, row: &[u8]) -> Result<(), ErrorFields> {
        self.fields.clear();
        let delimiter = self.plan.options.delimiter;
        let mut start = 0;
        let mut i = 0;
        while i < row.len() {
            match row[i] {
                b'\\' => {
                    if row.get(i + 1) == Some(&b'.') {
                        return Err(self.error(
                            "22P04",
                            "end-of-copy marker corrupt: \\. must stand alone on its line \
                             through the pgseal proxy",
                            None,
                        ));
                    }
                    i += 2;
                    continue;
                }
                c if c == delimiter => {
                    self.fields.push(Field {
                        raw: start..i,
                        quoted: false,
                    });
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        self.fields.push(Field {
            raw: start..row.len().max(start),
            quoted: false,
        });
        Ok(())
    }

    /// Splits a CSV row; quoted fields keep their quotes in `raw`.
    fn split_csv(&mut self, row: &[u8]) -> Result<(), ErrorFields> {
        self.fields.clear();
        let o = &self.plan.options;
        let (delimiter, quote, escape) = (o.delimiter, o.quote, o.escape);
        let mut start = 0;
        let mut i = 0;
        let mut in_quote = false;
        let mut quoted = false;
        while i < row.len() {
            let c = row[i];
            if in_quote {
                if c == escape && i + 1 < row.len() && (row[i + 1] == quote || row[i + 1] == escape)
                {
                    i += 2;
                    continue;
                }
                if c == quote {
                    in_quote = false;
                }
            } else if c == quote {
                in_quote = true;
                quoted = true;
            } else if c == delimiter {
                self.fields.push(Field {
                    raw: start..i,
                    quoted,
                });
                start = i + 1;
                quoted = false;
            }
            i += 1;
        }
        if in_quote {
            return Err(self.error("22P04", "unterminated CSV quoted field", None));
        }
        self.fields.push(Field {
            raw: start..row.len().max(start),
            quoted,
        });
        Ok(())
    }

    /// A text field's value (`None`: `NULL`), backslash escapes resolved.
    fn text_value(&self, raw: &[u8]) -> Option<Vec<u8>> {
        (raw != self.plan.options.null.as_bytes()).then(|| unescape_text(raw))
    }

    /// A CSV field's value (`None`: `NULL`), quotes and escapes resolved.
    fn csv_value(&self, raw: &[u8], quoted: bool, column: &CopyColumn) -> Option<Vec<u8>> {
        let o = &self.plan.options;
        let null = o.null.as_bytes();
        if !quoted && raw == null && !column.force_not_null {
            return None;
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut in_quote = false;
        let mut i = 0;
        while i < raw.len() {
            let c = raw[i];
            if in_quote {
                if c == o.escape
                    && i + 1 < raw.len()
                    && (raw[i + 1] == o.quote || raw[i + 1] == o.escape)
                {
                    out.push(raw[i + 1]);
                    i += 2;
                    continue;
                }
                if c == o.quote {
                    in_quote = false;
                } else {
                    out.push(c);
                }
            } else if c == o.quote {
                in_quote = true;
            } else {
                out.push(c);
            }
            i += 1;
        }
        if quoted && column.force_null && out == null {
            return None;
        }
        Some(out)
    }

    /// Appends `value` as a CSV field, quoted when PostgreSQL would quote it.
    fn put_csv(&self, out: &mut BytesMut, value: &[u8], force: bool, single: bool) {
        let o = &self.plan.options;
        let needs = force
            || value == o.null.as_bytes()
            || (single && value == b"\\.")
            || value
                .iter()
                .any(|&c| c == o.delimiter || c == o.quote || c == b'\n' || c == b'\r');
        if !needs {
            out.extend_from_slice(value);
            return;
        }
        out.put_u8(o.quote);
        for &c in value {
            if c == o.quote || c == o.escape {
                out.put_u8(o.escape);
            }
            out.put_u8(c);
        }
        out.put_u8(o.quote);
    }

    fn seal_text(
        &self,
        bytes: &[u8],
        info: &EncryptedColumnInfo,
        column: &CopyColumn,
        catalog: &DbCatalog,
        settings: &SessionSettings,
    ) -> Result<Vec<u8>, ErrorFields> {
        let text = std::str::from_utf8(bytes).map_err(|_| {
            self.error(
                "22021",
                format!(
                    "invalid byte sequence for encoding \"UTF8\" in encrypted column {}",
                    info.qualified_name
                ),
                Some(&column.name),
            )
        })?;
        let value = parse_text(info.logical_type, text, settings)
            .map_err(|e| with_context(value_error(info, &e), self.context(Some(&column.name))))?;
        self.seal_value(&value, info, column, catalog)
    }

    fn seal_value(
        &self,
        value: &Value,
        info: &EncryptedColumnInfo,
        column: &CopyColumn,
        catalog: &DbCatalog,
    ) -> Result<Vec<u8>, ErrorFields> {
        seal(catalog, info, value).map_err(|e| with_context(e, self.context(Some(&column.name))))
    }

    /// Opens a stored value (`binary`: the raw ciphertext; else the bytea text) into the
    /// client's format.
    fn open(
        &self,
        stored: &[u8],
        binary: bool,
        column: &CopyColumn,
        catalog: &DbCatalog,
        settings: &SessionSettings,
    ) -> Result<Vec<u8>, ErrorFields> {
        let Some(crypto) = catalog.encrypted_column(column.table_oid, column.attnum) else {
            return Err(self.error(
                CORRUPTED,
                format!(
                    "the pgseal proxy no longer knows encrypted column {}",
                    column.name
                ),
                Some(&column.name),
            ));
        };
        open_value(catalog, crypto, stored, binary, binary, settings)
            .map_err(|e| with_context(e, self.context(Some(&column.name))))
    }

    /// A plaintext field must not carry a ciphertext out (fail closed on a wrong plan).
    fn check_plain(
        &self,
        raw: &[u8],
        quoted: bool,
        column: &CopyColumn,
    ) -> Result<(), ErrorFields> {
        let csv = self.plan.options.format == CopyFormat::Csv;
        // A bytea's text starts with a backslash (`\x…` hex or `\265…` escape format), which
        // the text format doubles; anything else cannot be a ciphertext, so the common case
        // costs one comparison.
        let prefix: &[u8] = if csv { b"\\" } else { b"\\\\" };
        let body = if quoted {
            raw.strip_prefix(&[self.plan.options.quote][..])
                .unwrap_or(raw)
        } else {
            raw
        };
        if !body.starts_with(prefix) {
            return Ok(());
        }
        let value = if csv {
            self.csv_value(raw, quoted, column)
        } else {
            Some(unescape_text(raw))
        };
        match value {
            Some(v) if carries_ciphertext(&v, false) => Err(self
                .error(
                    CORRUPTED,
                    format!(
                    "column {} of this COPY carries a pgseal ciphertext whose origin the pgseal \
                     proxy does not know",
                    column.name
                ),
                    Some(&column.name),
                )
                .hint("copy encrypted columns directly from their table or view")),
            _ => Ok(()),
        }
    }

    /// One unit of the binary format (the file header, a tuple or the trailer) if `pending`
    /// holds all of it; whether it did.
    fn binary_unit(
        &mut self,
        catalog: &DbCatalog,
        settings: &SessionSettings,
        out: &mut BytesMut,
    ) -> Result<bool, ErrorFields> {
        let p = &self.pending[..];
        if self.header_pending {
            if p.len() < 19 {
                return Ok(false);
            }
            if &p[..11] != BINARY_SIGNATURE {
                return Err(self.error("22P04", "COPY file signature not recognized", None));
            }
            let ext = i32::from_be_bytes([p[15], p[16], p[17], p[18]]);
            let Ok(ext) = usize::try_from(ext) else {
                return Err(self.error("22P04", "invalid COPY file header (wrong length)", None));
            };
            let total = 19 + ext;
            if p.len() < total {
                return Ok(false);
            }
            out.extend_from_slice(&p[..total]);
            let _ = self.pending.split_to(total);
            self.header_pending = false;
            return Ok(true);
        }
        if p.len() < 2 {
            return Ok(false);
        }
        let count = i16::from_be_bytes([p[0], p[1]]);
        if count == -1 {
            self.ended = true;
            return Ok(true);
        }
        self.line += 1;
        if usize::try_from(count).ok() != Some(self.plan.columns.len()) {
            return Err(self.error(
                "22P04",
                format!(
                    "row field count is {count}, expected {}",
                    self.plan.columns.len()
                ),
                None,
            ));
        }
        // Locate every field before rewriting any.
        let mut spans: Vec<Option<Range<usize>>> = Vec::with_capacity(self.plan.columns.len());
        let mut at = 2;
        for _ in 0..self.plan.columns.len() {
            let Some(len) = p.get(at..at + 4) else {
                self.line -= 1;
                return Ok(false);
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            at += 4;
            if len == -1 {
                spans.push(None);
                continue;
            }
            let Ok(len) = usize::try_from(len) else {
                return Err(self.error("22P04", "invalid field size", None));
            };
            if p.len() < at + len {
                self.line -= 1;
                return Ok(false);
            }
            spans.push(Some(at..at + len));
            at += len;
        }
        let tuple = self.pending.split_to(at).freeze();
        out.extend_from_slice(&tuple[..2]);
        let plan = Arc::clone(&self.plan);
        for (span, column) in spans.into_iter().zip(&plan.columns) {
            let Some(span) = span else {
                out.put_i32(-1);
                continue;
            };
            let raw = &tuple[span];
            let rewritten = match (&column.encrypted, self.direction) {
                (None, CopyDirection::Out) if carries_ciphertext(raw, true) => {
                    return Err(self.error(
                        CORRUPTED,
                        format!(
                            "column {} of this COPY carries a pgseal ciphertext whose origin \
                             the pgseal proxy does not know",
                            column.name
                        ),
                        Some(&column.name),
                    ))
                }
                (None, _) => None,
                (Some(info), CopyDirection::In) => {
                    let value = decode_binary(info.logical_type, raw).map_err(|e| {
                        with_context(value_error(info, &e), self.context(Some(&column.name)))
                    })?;
                    Some(self.seal_value(&value, info, column, catalog)?)
                }
                (Some(_), CopyDirection::Out) => {
                    Some(self.open(raw, true, column, catalog, settings)?)
                }
            };
            let bytes: &[u8] = rewritten.as_deref().unwrap_or(raw);
            let len = i32::try_from(bytes.len())
                .map_err(|_| self.error("54000", "a COPY field is too long", Some(&column.name)))?;
            out.put_i32(len);
            out.extend_from_slice(bytes);
        }
        Ok(true)
    }
}

/// Resolves the text format's backslash escapes as PostgreSQL's `COPY FROM` does.
fn unescape_text(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = raw.get(i) else {
            // A lone backslash at the end of the line is dropped, as PostgreSQL does.
            break;
        };
        i += 1;
        match e {
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => match raw.get(i).and_then(|d| hex_digit(*d)) {
                Some(first) => {
                    i += 1;
                    let mut v = first;
                    if let Some(second) = raw.get(i).and_then(|d| hex_digit(*d)) {
                        v = v * 16 + second;
                        i += 1;
                    }
                    out.push(v);
                }
                None => out.push(b'x'),
            },
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            other => out.push(other),
        }
    }
    out
}

fn hex_digit(d: u8) -> Option<u8> {
    (d as char).to_digit(16).and_then(|v| u8::try_from(v).ok())
}

/// Appends `value` escaped for the text format, as PostgreSQL's `COPY TO` escapes it.
fn put_text(out: &mut BytesMut, value: &[u8], delimiter: u8) {
    for &c in value {
        match c {
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            11 => out.extend_from_slice(b"\\v"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            c if c == delimiter => {
                out.put_u8(b'\\');
                out.put_u8(c);
            }
            c => out.put_u8(c),
        }
    }
}

/// Adds the `COPY` context to an error that has none.
fn with_context(fields: ErrorFields, context: String) -> ErrorFields {
    if fields.get(b'W').is_some() {
        fields
    } else {
        fields.with(b'W', context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgseal_sql::CopyOptions;

    fn codec(format: CopyFormat, delimiter: u8, quote: u8, escape: u8) -> RowCodec {
        let column = |name: &str| CopyColumn {
            name: name.to_owned(),
            table_oid: 0,
            attnum: 0,
            encrypted: None,
            force_quote: false,
            force_not_null: false,
            force_null: false,
        };
        RowCodec::new(Arc::new(CopyPlan {
            direction: CopyDirection::In,
            relation: "t".to_owned(),
            columns: vec![column("a"), column("b")],
            options: CopyOptions {
                format,
                delimiter,
                null: if format == CopyFormat::Csv {
                    String::new()
                } else {
                    "\\N".to_owned()
                },
                quote,
                escape,
                header: false,
            },
        }))
    }

    /// Feeds `chunks` to the row scanner and returns the complete rows found.
    fn rows(codec: &mut RowCodec, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut found = Vec::new();
        for chunk in chunks {
            codec.pending.extend_from_slice(chunk);
            while let Some(end) = codec.scan_row() {
                let row = codec.pending.split_to(end + 1);
                found.push(row[..end].to_vec());
            }
        }
        found
    }

    #[test]
    fn text_rows_end_at_unescaped_newlines_across_chunks() {
        let mut c = codec(CopyFormat::Text, b'\t', b'"', b'"');
        let found = rows(&mut c, &[b"a\\", b"\nb\tc\n", b"d\\\\", b"\ne"]);
        assert_eq!(found, vec![b"a\\\nb\tc".to_vec(), b"d\\\\".to_vec()]);
        assert_eq!(&c.pending[..], b"e");
    }

    #[test]
    fn csv_rows_keep_newlines_inside_quotes_across_chunks() {
        let mut c = codec(CopyFormat::Csv, b',', b'"', b'"');
        let found = rows(&mut c, &[b"1,\"x\n", b"\"\"y\"\n2,\"", b"\"\n"]);
        assert_eq!(found, vec![b"1,\"x\n\"\"y\"".to_vec(), b"2,\"\"".to_vec()]);
        // A distinct escape character escapes the quote inside quotes.
        let mut c = codec(CopyFormat::Csv, b',', b'\'', b'\\');
        let found = rows(&mut c, &[b"1,'a\\'\nb'\n"]);
        assert_eq!(found, vec![b"1,'a\\'\nb'".to_vec()]);
    }

    #[test]
    fn text_fields_split_and_unescape_like_postgres() {
        let mut c = codec(CopyFormat::Text, b'\t', b'"', b'"');
        c.split_text(b"x\\\ty\tz").expect("splits");
        assert_eq!(c.fields.len(), 2);
        assert_eq!(c.fields[0].raw, 0..4);
        assert_eq!(
            unescape_text(b"a\\tb\\nc\\\\d\\101\\x41\\xZ\\q\\"),
            b"a\tb\nc\\dAAxZq".to_vec()
        );
        assert_eq!(c.text_value(b"\\N"), None);
        assert!(c.split_text(b"a\\.\tb").is_err(), "\\. inside a line");
    }

    #[test]
    fn csv_fields_resolve_quotes_null_and_force_options() {
        let mut c = codec(CopyFormat::Csv, b',', b'"', b'"');
        c.split_csv(b"\"a,\"\"b\"\"\",").expect("splits");
        assert_eq!(c.fields.len(), 2);
        let plan = Arc::clone(&c.plan);
        let (first, second) = (c.fields[0].clone(), c.fields[1].clone());
        let raw = b"\"a,\"\"b\"\"\",";
        assert_eq!(
            c.csv_value(&raw[first.raw.clone()], first.quoted, &plan.columns[0]),
            Some(b"a,\"b\"".to_vec())
        );
        assert_eq!(
            c.csv_value(&raw[second.raw], second.quoted, &plan.columns[1]),
            None
        );
        assert_eq!(
            c.csv_value(b"\"\"", true, &plan.columns[1]),
            Some(Vec::new())
        );
        let mut forced = plan.columns[1].clone();
        forced.force_null = true;
        assert_eq!(c.csv_value(b"\"\"", true, &forced), None);
        let mut not_null = plan.columns[1].clone();
        not_null.force_not_null = true;
        assert_eq!(c.csv_value(b"", false, &not_null), Some(Vec::new()));
        assert!(c.split_csv(b"\"open").is_err());
    }

    #[test]
    fn output_escaping_matches_copy_to() {
        let mut out = BytesMut::new();
        put_text(&mut out, b"a\tb\nc\\d|e\x08", b'|');
        assert_eq!(&out[..], b"a\\tb\\nc\\\\d\\|e\\b");
        let c = codec(CopyFormat::Csv, b',', b'"', b'"');
        let mut out = BytesMut::new();
        c.put_csv(&mut out, b"plain", false, false);
        c.put_csv(&mut out, b"", false, false);
        c.put_csv(&mut out, b"a,\"b", false, false);
        c.put_csv(&mut out, b"x", true, false);
        c.put_csv(&mut out, b"\\.", false, true);
        assert_eq!(&out[..], b"plain\"\"\"a,\"\"b\"\"x\"\"\\.\"");
    }
}
