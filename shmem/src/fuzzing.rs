//! Entry points for the fuzz targets (`fuzz/`), not a stable API.
//!
//! A fuzz target must reach the restore-side validation with bytes it
//! chooses, the way a replica slot receives them from the back LAN: this
//! module publishes raw bytes into a slot as the replication receiver does,
//! then reads them back through the reader every takeover uses. It adds no
//! path of its own and knows nothing of the fuzzer.

use crate::segment::Region;
use crate::slot::{ReadError, SlotId, ValidSlot};

/// Publishes `bytes` into `slot` of `region` as a replica write with
/// sequence `seq` (even, newer than the slot's), then reads the slot back
/// through [`Region::read`]: bytecheck and the record rules.
///
/// Returns `Err(ReadError::OutOfRange)` without writing when the replica
/// write is refused (slot out of range, payload too long, stale or odd
/// sequence).
pub fn publish_and_read(
    region: &Region,
    slot: u32,
    seq: u64,
    bytes: &[u8],
) -> Result<Option<ValidSlot>, ReadError> {
    if !region.apply_replica(slot, seq, bytes) {
        return Err(ReadError::OutOfRange);
    }
    region.read(SlotId(slot))
}
