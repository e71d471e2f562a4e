//! Every decoder of `pgseal-wire` over arbitrary bytes: none may panic, and whatever decodes
//! must re-encode to exactly the bytes it was decoded from (decoders consume whole bodies and
//! accept nothing they cannot reproduce). The same checks run as proptests in
//! `crates/wire/tests/properties.rs`.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use pgseal_wire::{
    decode_frame, decode_startup, BackendMessage, Frame, FrontendMessage, StartupPacket,
};

const MAX_LEN: usize = 1 << 20;

fn check_frame(frame: &Frame) {
    let mut raw = BytesMut::new();
    frame.encode(&mut raw).expect("a frame re-encodes");
    if let Ok(message) = FrontendMessage::decode(frame) {
        let mut out = BytesMut::new();
        message
            .encode(&mut out)
            .expect("a decoded message re-encodes");
        assert_eq!(out, raw, "frontend {message:?}");
        let mut again = out.clone();
        let reframed = decode_frame(&mut again, MAX_LEN)
            .expect("valid")
            .expect("complete");
        assert_eq!(FrontendMessage::decode(&reframed).as_ref(), Ok(&message));
    }
    if let Ok(message) = BackendMessage::decode(frame) {
        let mut out = BytesMut::new();
        message
            .encode(&mut out)
            .expect("a decoded message re-encodes");
        assert_eq!(out, raw, "backend {message:?}");
        let mut again = out.clone();
        let reframed = decode_frame(&mut again, MAX_LEN)
            .expect("valid")
            .expect("complete");
        assert_eq!(BackendMessage::decode(&reframed).as_ref(), Ok(&message));
    }
}

fuzz_target!(|data: &[u8]| {
    // Startup phase: a length-prefixed packet, then the same bytes as a bare packet body.
    let mut src = BytesMut::from(data);
    if let Ok(Some(packet)) = decode_startup(&mut src, MAX_LEN) {
        let consumed = data.len() - src.len();
        let mut out = BytesMut::new();
        packet
            .encode(&mut out)
            .expect("a decoded packet re-encodes");
        assert_eq!(&out[..], &data[..consumed]);
    }
    if let Ok(packet) = StartupPacket::decode(&Bytes::copy_from_slice(data)) {
        let mut out = BytesMut::new();
        packet
            .encode(&mut out)
            .expect("a decoded packet re-encodes");
        assert_eq!(&out[4..], data);
    }

    // Tagged phase: every frame of the stream through both message decoders, then the input
    // as one frame (first byte the tag, the rest the body) so bodies need no valid length.
    let mut src = BytesMut::from(data);
    while let Ok(Some(frame)) = decode_frame(&mut src, MAX_LEN) {
        check_frame(&frame);
    }
    if let Some((&tag, body)) = data.split_first() {
        check_frame(&Frame::new(tag, Bytes::copy_from_slice(body)));
    }
});
