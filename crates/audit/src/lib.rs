//! Audit events for key and schema operations, written as JSON lines to a configurable sink.
