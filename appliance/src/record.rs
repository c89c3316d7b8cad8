//! Checkpoint records ↔ what the appliance restores: the one place where a
//! dataplane [`TcbExport`] becomes the segment's [`TcpBlock`] and back, a
//! record's endpoints become a [`FourTuple`], and raw 32-bit sequence
//! numbers become [`SeqNum`]s.
//!
//! The segment's format keeps raw `u32`s (baton-shmem must not know the
//! dataplane); everything above this module compares sequence numbers as
//! [`SeqNum`], modulo 2^32 (RFC 9293 §3.4), never by hand. The application
//! block is HTTP's to fill and read (`crate::http::checkpoint`); this module
//! only carries it. It knows nothing of slots, cadence or takeover plans.
use baton_dataplane::tcp::{FourTuple, SeqNum, State, TcbExport};
use baton_shmem::record::{ArchivedConnRecord, ConnRecord, TcpBlock, Transport};

use crate::http::ResponseCheckpoint;
use crate::orphans::Orphan;

/// The sequence variables of an export, as sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seqs {
    /// Our initial sequence number.
    pub(crate) iss: SeqNum,
    /// The client's initial sequence number.
    pub(crate) irs: SeqNum,
    /// SND.UNA.
    pub(crate) snd_una: SeqNum,
    /// SND.NXT.
    pub(crate) snd_nxt: SeqNum,
    /// RCV.NXT.
    pub(crate) rcv_nxt: SeqNum,
}

/// The sequence variables of `e`.
pub(crate) fn seqs(e: &TcbExport) -> Seqs {
    Seqs {
        iss: SeqNum(e.iss),
        irs: SeqNum(e.irs),
        snd_una: SeqNum(e.snd_una),
        snd_nxt: SeqNum(e.snd_nxt),
        rcv_nxt: SeqNum(e.rcv_nxt),
    }
}

/// Where a response's object starts in our byte stream.
pub(crate) fn object_start(cp: &ResponseCheckpoint) -> SeqNum {
    cp.object_start_seq
}

/// The client sequence number up to which an upload's spool holds the
/// body, if `cp` is an upload.
pub(crate) fn upload_covered(cp: &ResponseCheckpoint) -> Option<SeqNum> {
    cp.upload.as_ref().map(|u| u.covered_seq())
}

/// The TCP block of `e`, covering the client's bytes up to `rcv_nxt` (an
/// upload may hold it below the TCB's RCV.NXT, see `serve::checkpoint`),
/// with `acks_covered` as the writer judged it.
pub(crate) fn tcp_block(e: &TcbExport, rcv_nxt: SeqNum, acks_covered: bool) -> TcpBlock {
    TcpBlock {
        iss: e.iss,
        irs: e.irs,
        snd_una: e.snd_una,
        snd_nxt: e.snd_nxt,
        rcv_nxt: rcv_nxt.0,
        snd_wnd: e.snd_wnd,
        rcv_wnd: e.rcv_wnd,
        mss: e.mss,
        snd_wscale: e.snd_wscale,
        rcv_wscale: e.rcv_wscale,
        sack_permitted: e.sack_permitted,
        timestamps: e.timestamps,
        ts_recent: e.ts_recent,
        ts_last_sent: e.ts_last_sent,
        tcp_state: e.state.as_u8(),
        acks_covered,
    }
}

/// The export a survivor restores from `block` of the connection `tuple`;
/// `None` for a TCP state this build does not know.
pub(crate) fn export_of(tuple: FourTuple, block: &TcpBlock) -> Option<TcbExport> {
    Some(TcbExport {
        tuple,
        state: State::from_u8(block.tcp_state)?,
        iss: block.iss,
        irs: block.irs,
        snd_una: block.snd_una,
        snd_nxt: block.snd_nxt,
        rcv_nxt: block.rcv_nxt,
        snd_wnd: block.snd_wnd,
        rcv_wnd: block.rcv_wnd,
        mss: block.mss,
        snd_wscale: block.snd_wscale,
        rcv_wscale: block.rcv_wscale,
        sack_permitted: block.sack_permitted,
        timestamps: block.timestamps,
        ts_recent: block.ts_recent,
        ts_last_sent: block.ts_last_sent,
        acks_covered: block.acks_covered,
    })
}

/// The connection a record belongs to.
pub(crate) fn tuple_of(r: &ConnRecord<'_>) -> FourTuple {
    FourTuple {
        local: r.local.socket_addr(),
        remote: r.remote.socket_addr(),
    }
}

/// A record as the dataplane and HTTP restore it; `None` for records that
/// cannot be resumed (UDP members, unknown TCP states).
pub(crate) fn orphan_of(record: &ArchivedConnRecord<'_>) -> Option<Orphan> {
    let r = record.view();
    if r.transport != Transport::Tcp {
        return None;
    }
    let export = export_of(tuple_of(&r), &r.tcp?)?;
    let response = r.app.as_ref().map(ResponseCheckpoint::from_app_block);
    Some(Orphan { export, response })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state() -> impl Strategy<Value = State> {
        (0u8..=u8::MAX).prop_filter_map("a known state", State::from_u8)
    }

    prop_compose! {
        fn export()(
            ports in (1u16.., 1u16..),
            state in state(),
            seqs in any::<[u32; 5]>(),
            wnds in any::<(u32, u32)>(),
            mss in any::<u16>(),
            scales in (0u8..=14, 0u8..=14),
            flags in any::<(bool, bool, bool)>(),
            ts in any::<(u32, u32)>(),
        ) -> TcbExport {
            TcbExport {
                tuple: FourTuple {
                    local: ([198, 18, 0, 11], ports.0).into(),
                    remote: ([198, 18, 0, 100], ports.1).into(),
                },
                state,
                iss: seqs[0],
                irs: seqs[1],
                snd_una: seqs[2],
                snd_nxt: seqs[3],
                rcv_nxt: seqs[4],
                snd_wnd: wnds.0,
                rcv_wnd: wnds.1,
                mss,
                snd_wscale: scales.0,
                rcv_wscale: scales.1,
                sack_permitted: flags.0,
                timestamps: flags.1,
                ts_recent: ts.0,
                ts_last_sent: ts.1,
                acks_covered: flags.2,
            }
        }
    }

    proptest! {
        #[test]
        fn a_tcb_survives_the_trip_through_its_tcp_block(e in export()) {
            let block = tcp_block(&e, SeqNum(e.rcv_nxt), e.acks_covered);
            let back = export_of(e.tuple, &block).expect("a known state");
            prop_assert_eq!(back, e);
        }

        #[test]
        fn the_block_carries_the_covered_client_sequence_not_the_tcbs(
            e in export(), below in 0u32..1_000_000,
        ) {
            let covered = SeqNum(e.rcv_nxt) - below;
            let block = tcp_block(&e, covered, false);
            let back = export_of(e.tuple, &block).expect("a known state");
            prop_assert_eq!(SeqNum(back.rcv_nxt), covered);
            prop_assert!(!back.acks_covered);
        }
    }

    #[test]
    fn a_block_with_an_unknown_state_is_not_restored() {
        let unknown = (0u8..=u8::MAX)
            .find(|&s| State::from_u8(s).is_none())
            .expect("some code is no state");
        let block = TcpBlock {
            tcp_state: unknown,
            ..TcpBlock::default()
        };
        let tuple = FourTuple {
            local: ([198, 18, 0, 11], 80).into(),
            remote: ([198, 18, 0, 100], 40000).into(),
        };
        assert!(export_of(tuple, &block).is_none());
    }
}
