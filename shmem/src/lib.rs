//! The checkpoint segment: where every box writes the state of each client
//! connection it owns, so that a surviving box can take the connection over
//! when its owner dies (the shared state of the seed's Fig. 5, read at
//! takeover in Fig. 6).
//!
//! This crate owns the bytes of the segment and nothing else: it knows TCP
//! sequence numbers and an opaque "named object" application block, but not
//! HTTP, not packets and not the failure detector. The byte format is
//! specified in `docs/CHECKPOINT_FORMAT.md`; change both together.
//!
//! Where to start reading:
//!
//! - [`segment`]: the mapped file, its header and one region per box
//!   ([`Segment::open_or_create`], [`Segment::region`]).
//! - [`boxtable`]: each region's heartbeat, state, epoch, MAC, service IPs
//!   and counters ([`Region::heartbeat`], [`Region::box_info`]).
//! - [`mod@unit`]: the seqlocked slot-sized cells (slots and overflow pieces)
//!   and how they are written, copied and replicated.
//! - [`slot`]: fixed-size seqlocked slots, the per-worker free lists
//!   ([`SlotAllocator`]) and writers ([`SlotWriter`]), and the reader API the
//!   control core uses at takeover ([`Region::records`], [`Region::find`]).
//! - [`record`]: the rkyv checkpoint record and bundle types.
//! - `overflow`: where a bundle too large for its slot lives (long URLs
//!   and validators), linked from the slot and read through it.
//! - [`index`]: which slot holds a given connection, per region, kept by
//!   each slot's writer ([`Segment::locate`]; issue 20).
//! - [`claim`]: which box restores a dead box's slot, claimed by CAS in a
//!   committed view ([`Region::claim`]).
//! - [`view`]: the agreed membership view, one cell in the header changed
//!   by compare-and-swap ([`ViewCell::read`], [`ViewCell::propose`]).
//! - [`loads`]: the survivors' loads committed with a view change (issue
//!   20), in the proposer's box table entry ([`Region::write_loads`]) and
//!   read with the view that names them ([`ViewCell::propose_with_loads`]).
//! - [`replication`]: authenticated UDP replication of a region to peers
//!   that share no mapping.
//!
//! ```no_run
//! use baton_shmem::{Layout, Segment};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let seg = Segment::open_or_create(
//!     std::path::Path::new("/dev/shm/baton.seg"),
//!     Layout { regions: 3, slots_per_region: 300_000, slot_size: 768 },
//! )?;
//! let me = seg.region(1)?;
//! me.heartbeat(1_700_000_000_000);
//! let mut slots = me.worker_slots(0, 2)?; // worker 0 of 2 owns half the slots
//! let mut writer = slots.writer();
//! let slot = slots.alloc().ok_or("region full")?;
//! # let records: [baton_shmem::ConnRecord<'_>; 0] = [];
//! writer.write(slot, &records)?;
//! for item in seg.region(2)?.records() {
//!     match item {
//!         Ok(rec) => println!("slot {} holds {} connections", rec.slot().0, rec.bundle().records.len()),
//!         Err(e) => eprintln!("skipping: {e}"),
//!     }
//! }
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod boxtable;
pub mod claim;
mod device;
#[doc(hidden)]
pub mod fuzzing;
pub mod index;
pub mod layout;
pub mod loads;
mod overflow;
pub mod record;
pub mod replication;
pub mod segment;
pub mod slot;
pub mod unit;
pub mod view;

pub use boxtable::{BoxInfo, BoxLoad, BoxState, BoxTableError, LOAD_VERSION, MAX_SERVICE_IPS};
pub use claim::{Claim, ClaimError};
pub use index::{IndexStats, Located};
pub use loads::{ChangeLoads, CommittedLoads, MemberLoad};
pub use overflow::OVERFLOW_PAYLOAD;
pub use record::{
    AppBlock, ArchivedAppBlock, ArchivedBundle, ArchivedConnRecord, ArchivedEndpoint,
    ArchivedTcpBlock, Bundle, ConnRecord, Endpoint, TcpBlock, Transport, UploadBlock,
    APP_PROTOCOL_FTP, APP_PROTOCOL_HTTP, APP_PROTOCOL_RTSP, MAX_APP_STATE_LEN, MAX_BUNDLE_RECORDS,
    MAX_NAME_LEN, MAX_TLS_BLOCK_LEN, MAX_VALIDATOR_LEN,
};
pub use replication::{
    heartbeat_addr, size_receive_buffer, DatagramSocket, ReplicationConfig, ReplicationError,
    ReplicationStats, Replicator, FATAL_ERROR_RUN, HEARTBEATS_PER_TICK, MAX_DATAGRAM,
    MAX_HEARTBEAT,
};
pub use segment::{
    Layout, Region, Segment, SegmentError, LAYOUT_VERSION, MAGIC, MIN_SLOT_SIZE,
    SLOTS_PER_OVERFLOW_ENTRY, SLOT_SIZE, SLOT_SIZE_STEP,
};
pub use slot::{
    check_archive, ReadError, Records, SlotAllocator, SlotError, SlotId, SlotWriter, ValidSlot,
    WriteError, SLOT_PAYLOAD,
};
pub use view::{
    InvalidProposal, Member, ProposeError, View, ViewCell, ViewError, ViewNumber, MAX_MEMBERS,
    REASON_HISTORY,
};
