//! The byte format: every message survives its encoding, and the decoder
//! fed any bytes returns an error or a message, never panics.

use baton_membership::{ChangeLoads, CommittedLoads, Member, MemberLoad, View, ViewNumber};
use baton_raft::codec::{from_bytes, to_bytes, DecodeError, Writer};
use baton_raft::transport::frame::{Auth, Header, MAX_DATAGRAM};
use baton_raft::transport::{ClientRequest, ClientResponse, Message};
use baton_raft::types::{NodeId, Outcome, TypeConfig};
use baton_raft::Propose;
use openraft::raft::AppendEntriesRequest;
use openraft::{Entry, EntryPayload, Membership};
use proptest::prelude::*;

mod samples;
use samples::*;

fn body(m: &Message) -> Vec<u8> {
    let mut w = Writer::default();
    m.encode_body(&mut w);
    w.into_inner()
}

#[test]
fn every_message_survives_its_encoding() {
    for m in messages() {
        let bytes = body(&m);
        let back = Message::decode(m.kind(), &bytes).unwrap_or_else(|e| panic!("{m:?}: {e}"));
        // openraft's messages have no PartialEq; their encoding is canonical.
        assert_eq!(body(&back), bytes, "{m:?}");
        assert_eq!(format!("{back:?}"), format!("{m:?}"));
    }
}

#[test]
fn a_truncated_or_extended_body_is_refused() {
    for m in messages() {
        let bytes = body(&m);
        for cut in 0..bytes.len() {
            assert!(
                Message::decode(m.kind(), &bytes[..cut]).is_err(),
                "{m:?} cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            Message::decode(m.kind(), &longer).is_err(),
            "{m:?} with a byte more"
        );
    }
}

#[test]
fn a_full_append_of_proposals_fits_one_datagram() {
    // The largest proposal: 16 members, 15 survivors' loads.
    let p = Propose {
        proposer: 15,
        expected: ViewNumber(u32::MAX - 1),
        members: (0..16)
            .map(|id| Member {
                id,
                epoch: u32::MAX,
            })
            .collect(),
        reason: u64::MAX,
        loads: Some(full_loads()),
    };
    let entries = (0..24)
        .map(|i| Entry {
            log_id: log_id(u64::MAX, i),
            payload: EntryPayload::Normal(p.clone()),
        })
        .collect();
    let m = Message::Append(
        u64::MAX,
        0,
        AppendEntriesRequest {
            vote: vote(u64::MAX, true),
            prev_log_id: Some(log_id(1, 1)),
            entries,
            leader_commit: Some(log_id(1, 1)),
        },
    );
    let auth = Auth::new(b"0123456789abcdef").unwrap_or_else(|| unreachable!());
    let h = Header {
        kind: m.kind(),
        sender: 1,
        target: 2,
        boot: 1,
        target_boot: 3,
        counter: 1,
    };
    let d = auth.seal(&h, &body(&m));
    assert!(
        d.is_some_and(|d| d.len() <= MAX_DATAGRAM),
        "24 entries (max_payload_entries) with full loads must fit"
    );
}

#[test]
fn a_count_larger_than_the_input_is_refused_before_anything_is_allocated() {
    let mut w = Writer::default();
    w.u64(1); // rid
    w.u32(0); // quorum age
    w.u64(4); // vote: term, node, committed
    w.u64(3);
    w.u8(1);
    w.u8(0); // prev_log_id: none
    w.u32(4000); // entries: 4000 announced, none present
    let bytes = w.into_inner();
    let e = Message::decode(3, &bytes).map(|_| ()).unwrap_err();
    assert_eq!(e, DecodeError::Truncated("entries"));
    let mut w = Writer::default();
    w.u64(1);
    w.u32(0);
    w.u64(4);
    w.u64(3);
    w.u8(1);
    w.u8(0);
    w.u32(u32::MAX);
    let e = Message::decode(3, &w.into_inner()).map(|_| ()).unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::TooMany {
                what: "entries",
                ..
            }
        ),
        "{e}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Whatever arrives, the decoder answers without panicking.
    #[test]
    fn the_decoder_never_panics_on_random_bytes(kind in 0u8..12, bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::decode(kind, &bytes);
    }

    /// Flipping bytes of valid bodies explores the decoder's deeper paths.
    #[test]
    fn the_decoder_never_panics_on_damaged_messages(which in 0usize..21, flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let ms = messages();
        let m = &ms[which % ms.len()];
        let mut bytes = body(m);
        for (i, v) in flips {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        let _ = Message::decode(m.kind(), &bytes);
    }

    /// A datagram's frame opens only with the key it was sealed with.
    #[test]
    fn random_datagrams_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let auth = Auth::new(b"0123456789abcdef").unwrap_or_else(|| unreachable!());
        prop_assert!(auth.open(&bytes).is_err());
    }
}

#[test]
fn a_membership_whose_voters_and_nodes_add_up_to_too_many_is_refused() {
    // Found by fuzzing (fuzz/corpus/raft_message): 64 voters and 64 other
    // nodes each pass the limit, but openraft merges them into 128 nodes,
    // which would re-encode to bytes no box can decode (a stored log that
    // never loads again).
    let mut w = Writer::default();
    w.u32(1); // one voter set
    w.u32(64);
    for id in 1..=64u64 {
        w.u64(id);
    }
    w.u32(64); // nodes
    for id in 101..=164u64 {
        w.u64(id);
    }
    let e =
        baton_raft::codec::from_bytes::<Membership<NodeId, openraft::EmptyNode>>(&w.into_inner())
            .map(|_| ())
            .unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::TooMany {
                what: "node ids",
                n: 128
            }
        ),
        "{e}"
    );
    // Within the limit once merged: still accepted.
    let mut w = Writer::default();
    w.u32(1);
    w.u32(2);
    w.u64(1);
    w.u64(2);
    w.u32(1);
    w.u64(3);
    let m =
        baton_raft::codec::from_bytes::<Membership<NodeId, openraft::EmptyNode>>(&w.into_inner())
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.nodes().count(), 3);
}

fn full_loads() -> ChangeLoads {
    ChangeLoads {
        capacity: u32::MAX,
        orphans: u32::MAX,
        members: (0..15)
            .map(|id| MemberLoad {
                id,
                connections: u32::MAX,
                busy_ppm: 1_000_000,
            })
            .collect(),
    }
}

fn view_with_loads() -> View {
    let mut v = view();
    v.loads[0] = CommittedLoads::Read(full_loads());
    v.loads[2] = CommittedLoads::Read(ChangeLoads {
        capacity: 10,
        orphans: 3,
        members: vec![],
    });
    v
}

fn propose_with_loads() -> Propose {
    Propose {
        proposer: 2,
        expected: ViewNumber(6),
        members: view().members,
        reason: 42,
        loads: Some(full_loads()),
    }
}

#[test]
fn a_view_and_a_proposal_carry_their_committed_loads_through_every_message() {
    let with = [
        Message::ClientReply(1, ClientResponse::View(view_with_loads())),
        Message::ClientReply(
            2,
            ClientResponse::Outcome(Outcome::Committed(view_with_loads())),
        ),
        Message::ClientReply(
            3,
            ClientResponse::Outcome(Outcome::Conflict(view_with_loads())),
        ),
        Message::Client(4, ClientRequest::Propose(propose_with_loads())),
    ];
    for m in with {
        let bytes = body(&m);
        let back = Message::decode(m.kind(), &bytes).unwrap_or_else(|e| panic!("{m:?}: {e}"));
        assert_eq!(format!("{back:?}"), format!("{m:?}"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            Message::decode(m.kind(), &longer).is_err(),
            "{m:?} with a byte more"
        );
    }
}

#[test]
fn older_views_and_proposals_decode_with_no_loads() {
    // Bytes as the build before issue 20 wrote them: no trailing list.
    let old = body(&Message::ClientReply(1, ClientResponse::View(view())));
    let mut plain = view_with_loads();
    *plain.loads = Default::default();
    match Message::decode(8, &old) {
        Ok(Message::ClientReply(_, ClientResponse::View(v))) => {
            assert_eq!(v, plain);
            assert!(v.loads.iter().all(|l| *l == CommittedLoads::None));
        }
        other => panic!("{other:?}"),
    }
    let snapshot = to_bytes(&view());
    assert_eq!(from_bytes::<View>(&snapshot), Ok(view()));
    assert_eq!(
        from_bytes::<View>(&to_bytes(&view_with_loads())),
        Ok(view_with_loads())
    );
}

#[test]
fn entries_with_and_without_loads_follow_each_other_in_one_append() {
    let mut plain = propose_with_loads();
    plain.loads = None;
    let entries: Vec<Entry<TypeConfig>> =
        [propose_with_loads(), plain.clone(), propose_with_loads()]
            .into_iter()
            .enumerate()
            .map(|(i, p)| Entry {
                log_id: log_id(2, i as u64 + 1),
                payload: EntryPayload::Normal(p),
            })
            .collect();
    let m = Message::Append(
        7,
        0,
        AppendEntriesRequest {
            vote: vote(2, true),
            prev_log_id: None,
            entries,
            leader_commit: None,
        },
    );
    let bytes = body(&m);
    let back = Message::decode(m.kind(), &bytes).expect("decodes");
    assert_eq!(body(&back), bytes);
    let Message::Append(_, _, req) = back else {
        panic!("{back:?}")
    };
    let loads: Vec<bool> = req
        .entries
        .iter()
        .map(|e| matches!(&e.payload, EntryPayload::Normal(p) if p.loads.is_some()))
        .collect();
    assert_eq!(loads, [true, false, true]);
    // An entry without loads keeps the older bytes (payload tag 1).
    let mut one = Writer::default();
    Message::Append(
        7,
        0,
        AppendEntriesRequest {
            vote: vote(2, true),
            prev_log_id: None,
            entries: vec![Entry {
                log_id: log_id(2, 1),
                payload: EntryPayload::Normal(plain),
            }],
            leader_commit: None,
        },
    )
    .encode_body(&mut one);
    assert!(one.into_inner().contains(&1));
}
