//! Target `raft_message`: the Raft transport's datagram check and message
//! decoding (every openraft message, entries, snapshots, views).

use baton_raft::codec::Writer;
use baton_raft::transport::frame::{Auth, Header};
use baton_raft::transport::Message;

/// The cluster key of the target (and of the seeds).
pub const KEY: &[u8] = b"fuzz-cluster-key-0123456789";

/// `data[0]`: the message kind; the rest: its body. Decoded directly, and
/// through a sealed datagram opened again; a body that decodes must
/// re-encode to bytes that decode to the same encoding.
pub fn run(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let Some(auth) = Auth::new(KEY) else {
        return;
    };
    // The whole input as a datagram: almost always refused by the tag.
    let _ = auth.open(data);
    let h = Header {
        kind,
        sender: 1,
        target: 2,
        boot: 7,
        target_boot: 3,
        counter: 9,
    };
    if let Some(d) = auth.seal(&h, body) {
        match auth.open(&d) {
            Ok((h2, b2)) => assert!(h2 == h && b2 == body, "sealed datagram opened differently"),
            Err(_) => panic!("own sealed datagram refused"),
        }
    }
    if let Ok(m) = Message::decode(kind, body) {
        let once = encode(&m);
        match Message::decode(m.kind(), &once) {
            Ok(again) => assert_eq!(encode(&again), once, "encoding is not stable"),
            Err(e) => panic!("a decoded message re-encodes to bytes that fail: {e}"),
        }
    }
}

fn encode(m: &Message) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    m.encode_body(&mut w);
    w.into_inner()
}
