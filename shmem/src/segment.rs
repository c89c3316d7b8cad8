//! The segment file: a global header followed by one region per box.
//!
//! ```text
//! offset 0        header (HEADER_SIZE = 4096 bytes, one page): geometry in
//!                 the first 56 bytes, the membership view cell from byte 64
//! offset 4096     region 0: box entry (BOX_ENTRY_SIZE) + slots_per_region × slot_size
//!                 + the overflow area (Layout::overflow_entries() entries of
//!                 Layout::overflow_pieces() slot-sized pieces), padded to a multiple of 4096
//! ...             region 1, 2, … (index = member/box id)
//! after regions   claims: one u64 per slot of every region (region-major),
//!                 padded to a multiple of 4096 (see [`crate::claim`])
//! after claims    tuple indexes: one per region (see [`crate::index`])
//! ```
//!
//! Each box writes only its own region; every box reads all regions. The
//! same layout serves a segment that all boxes map ("shared") and a local
//! file that holds the own region plus replicas of the peers' regions
//! ("replicated", see [`crate::replication`]). See docs/CHECKPOINT_FORMAT.md.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::MmapRaw;

use crate::device;

/// Magic at offset 0 of the segment: "BATONCKP", read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"BATONCKP");
use crate::layout::LayoutProblem;
pub use crate::layout::{
    Layout, BOX_ENTRY_SIZE, HEADER_SIZE, LAYOUT_VERSION, MIN_SLOT_SIZE, OVERFLOW_PAYLOAD,
    SLOTS_PER_OVERFLOW_ENTRY, SLOT_HEADER, SLOT_SIZE, SLOT_SIZE_STEP,
};
pub(crate) use crate::layout::{CLAIM_SIZE, REGION_ALIGN};

// Header field offsets (all little-endian, see docs/CHECKPOINT_FORMAT.md).
const H_MAGIC: usize = 0;
const H_VERSION: usize = 8;
const H_SLOT_SIZE: usize = 12;
const H_SLOTS: usize = 16;
const H_REGIONS: usize = 20;
const H_BOX_ENTRY: usize = 24;
const H_HEADER_SIZE: usize = 28;
const H_STRIDE: usize = 32;
const H_TOTAL: usize = 40;
const H_OVERFLOW: usize = 48;
const H_PIECES: usize = 52;
/// FNV-1a over the geometry fields: the one check on `slots` and `regions`
/// that page padding does not absorb (64 and 65 slots give the same
/// stride and length).
const H_SUM: usize = 56;
/// Header bytes holding the geometry and its sum.
const H_GEOMETRY: usize = 64;
/// Start of the membership view cell ([`crate::view`]), which fills the
/// header page's spare bytes from the second cache line on.
pub(crate) const H_VIEW: usize = 64;

impl Layout {
    fn check(&self) -> Result<(), SegmentError> {
        match self.problem() {
            None => Ok(()),
            Some(LayoutProblem::Empty) => Err(SegmentError::EmptyLayout(*self)),
            Some(LayoutProblem::TooLarge) => Err(SegmentError::TooLarge(*self)),
            Some(LayoutProblem::SlotSize) => Err(SegmentError::BadSlotSize(*self)),
        }
    }
}

/// Why a segment could not be opened, created or addressed.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The file could not be opened, sized, linked or mapped.
    #[error("segment {path}: {source}")]
    Io {
        /// The segment path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file does not start with the segment magic.
    #[error("segment {path}: not a Baton checkpoint segment (magic {found:#018x}, expected {MAGIC:#018x})")]
    BadMagic {
        /// The segment path.
        path: PathBuf,
        /// The first 8 bytes, little-endian.
        found: u64,
    },
    /// The file was written by another layout version of this crate.
    #[error("segment {path}: layout version {found}, this build reads version {LAYOUT_VERSION}")]
    VersionMismatch {
        /// The segment path.
        path: PathBuf,
        /// Version in the file.
        found: u32,
    },
    /// The header's geometry (slot size, entry size, stride, length) is not
    /// the one this build computes: the header is corrupt or foreign.
    #[error("segment {path}: header field {field} is {found}, expected {expected}")]
    BadHeader {
        /// The segment path.
        path: PathBuf,
        /// Which header field disagrees.
        field: &'static str,
        /// Value in the file.
        found: u64,
        /// Value this build expects.
        expected: u64,
    },
    /// The file (or its symlink's target) belongs to another user or may
    /// be written by group or others: someone else could read every
    /// connection's addresses and URLs or forge records.
    #[error("segment {path}: owned by uid {uid} with mode {mode:o}; it must be this box's (uid {me}) and not writable by group or others")]
    NotPrivate {
        /// The segment path.
        path: PathBuf,
        /// The file's owner.
        uid: u32,
        /// The file's permission bits.
        mode: u32,
        /// This process's effective uid.
        me: u32,
    },
    /// The file holds a valid segment of another layout than requested.
    #[error("segment {path}: has {found:?}, config asks for {requested:?}")]
    LayoutMismatch {
        /// The segment path.
        path: PathBuf,
        /// Layout in the file.
        found: Layout,
        /// Layout the caller asked for.
        requested: Layout,
    },
    /// The file is shorter than its header says.
    #[error("segment {path}: file is {len} bytes, layout needs {need}")]
    Truncated {
        /// The segment path.
        path: PathBuf,
        /// File length.
        len: u64,
        /// Length the layout needs.
        need: u64,
    },
    /// A layout with no regions or no slots.
    #[error("layout {0:?} has no regions or no slots")]
    EmptyLayout(Layout),
    /// A layout too large to map.
    #[error("layout {0:?} is too large to map")]
    TooLarge(Layout),
    /// A slot size out of range or off the steps.
    #[error("layout {0:?}: slot size must be {MIN_SLOT_SIZE} to {SLOT_SIZE} bytes, a multiple of {SLOT_SIZE_STEP}")]
    BadSlotSize(Layout),
    /// A region index beyond the segment's region count.
    #[error("box id {id} is outside the segment's {regions} regions")]
    NoSuchRegion {
        /// Requested box id.
        id: u16,
        /// Regions in the segment.
        regions: u16,
    },
    /// A worker split that makes no sense (no workers, or worker ≥ workers,
    /// or more workers than slots).
    #[error("worker {worker} of {workers} cannot own slots of a {slots}-slot region")]
    BadWorkerSplit {
        /// Worker index.
        worker: usize,
        /// Number of workers.
        workers: usize,
        /// Slots in the region.
        slots: u32,
    },
}

pub(crate) struct Inner {
    map: MmapRaw,
    pub(crate) layout: Layout,
    path: PathBuf,
    /// One bit per slot of every region, set by each publish: which slots
    /// the replicator has to ship, without scanning 300,000 slot headers
    /// (one cache miss each) per tick. Process-local, not in the segment.
    pub(crate) dirty: Box<[AtomicU64]>,
}

impl Inner {
    fn new(map: MmapRaw, layout: Layout, path: PathBuf) -> Inner {
        let words = layout.regions as usize * layout.units_per_region().div_ceil(64) as usize;
        Inner {
            map,
            layout,
            path,
            dirty: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Words of the dirty bitmap of region `id`.
    pub(crate) fn dirty_words(&self, id: u16) -> &[AtomicU64] {
        let per = self.layout.units_per_region().div_ceil(64) as usize;
        let start = id as usize * per;
        self.dirty.get(start..start + per).unwrap_or(&[])
    }
}

impl Inner {
    pub(crate) fn base(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// An atomic u64 at `off` bytes into the mapping.
    ///
    /// # Safety
    /// `off + 8 <= len` and `off.is_multiple_of(8)`; callers derive `off` from the
    /// layout checked at open time, never from segment contents.
    pub(crate) unsafe fn u64_at(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.map.len());
        // SAFETY: the mapping is page-aligned and lives as long as `self`;
        // every access to shared words goes through atomics.
        unsafe { &*(self.base().add(off) as *const AtomicU64) }
    }

    /// An atomic u32 at `off` bytes into the mapping.
    ///
    /// # Safety
    /// `off + 4 <= len` and `off.is_multiple_of(4)`.
    pub(crate) unsafe fn u32_at(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= self.map.len());
        // SAFETY: as for `u64_at`.
        unsafe { &*(self.base().add(off) as *const AtomicU32) }
    }
}

/// A mapped checkpoint segment. Cheap to clone (an `Arc` inside), `Send` and
/// `Sync`: give each thread its own clone or [`Region`].
#[derive(Clone)]
pub struct Segment {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.inner.path)
            .field("layout", &self.inner.layout)
            .finish()
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Segment {
    /// Attaches to the segment at `path` if it exists with exactly `layout`,
    /// creates and initializes it otherwise.
    ///
    /// A new file is built under a temporary name and hard-linked into place,
    /// so two boxes starting together never see a half-written header: the
    /// loser of the link attaches to the winner's file. An existing file
    /// whose header is all zeros (a fresh ivshmem BAR, a hugetlbfs or device
    /// file someone else created at the right size) is initialized in place.
    /// A file holding another layout or version fails with a typed error; it
    /// is never reinterpreted.
    pub fn open_or_create(path: &Path, layout: Layout) -> Result<Segment, SegmentError> {
        layout.check()?;
        device::enable_if_bar(path).map_err(io_err(path))?;
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => return Self::attach_or_init(path, file, Some(layout)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path)(e)),
        }
        let tmp = tmp_path(path);
        let built = Self::build(&tmp, path, layout);
        let linked = built.and_then(|seg| {
            std::fs::hard_link(&tmp, path)
                .map(|()| seg)
                .map_err(io_err(path))
        });
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(seg) => Ok(seg),
            Err(SegmentError::Io { source, .. })
                if source.kind() == io::ErrorKind::AlreadyExists =>
            {
                // Another box created it first: attach to theirs.
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(io_err(path))?;
                Self::attach_or_init(path, file, Some(layout))
            }
            Err(SegmentError::Io { .. }) => {
                // A filesystem without hard links: create the file in place.
                // A concurrent opener that finds it still zero initializes
                // the same header, so the race is harmless for one layout.
                match OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                {
                    Ok(file) => {
                        file.set_len(layout.file_len()).map_err(io_err(path))?;
                        Self::map_and_init(path, &file, layout)
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        let file = OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open(path)
                            .map_err(io_err(path))?;
                        Self::attach_or_init(path, file, Some(layout))
                    }
                    Err(e) => Err(io_err(path)(e)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Creates, sizes and initializes a segment file at `tmp`, to be linked
    /// to `path`.
    fn build(tmp: &Path, path: &Path, layout: Layout) -> Result<Segment, SegmentError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)
            .map_err(io_err(tmp))?;
        file.set_len(layout.file_len()).map_err(io_err(tmp))?;
        let map = MmapRaw::map_raw(&file).map_err(io_err(tmp))?;
        let inner = Inner::new(map, layout, path.to_path_buf());
        write_header(&inner);
        Ok(Segment {
            inner: Arc::new(inner),
        })
    }

    /// Attaches to an existing, initialized segment, taking its layout from
    /// the header.
    pub fn open_existing(path: &Path) -> Result<Segment, SegmentError> {
        device::enable_if_bar(path).map_err(io_err(path))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        Self::attach_or_init(path, file, None)
    }

    fn attach_or_init(
        path: &Path,
        file: File,
        requested: Option<Layout>,
    ) -> Result<Segment, SegmentError> {
        let meta = file.metadata().map_err(io_err(path))?;
        check_private(path, &meta)?;
        let len = meta.len();
        let mut header = [0u8; H_GEOMETRY];
        if len < HEADER_SIZE as u64 {
            // An empty or short zero file (created by `touch` or a config
            // tool) is sized and initialized in place; anything else this
            // short is not a segment.
            if let Some(req) = requested {
                if is_zero_file(&file, len) {
                    file.set_len(req.file_len()).map_err(io_err(path))?;
                    return Self::map_and_init(path, &file, req);
                }
            }
            return Err(SegmentError::Truncated {
                path: path.to_path_buf(),
                len,
                need: HEADER_SIZE as u64,
            });
        }
        if device::is_pci_resource(path) {
            device::read_bar(&file, &mut header)
        } else {
            file.read_exact_at(&mut header, 0)
        }
        .map_err(io_err(path))?;
        let magic = le_u64(&header, H_MAGIC);
        if magic == 0 && header.iter().all(|&b| b == 0) {
            if let Some(req) = requested {
                // A BAR has its size; map_and_init says if it is too small.
                if len < req.segment_len() as u64 && !device::is_pci_resource(path) {
                    file.set_len(req.file_len()).map_err(io_err(path))?;
                }
                return Self::map_and_init(path, &file, req);
            }
        }
        let found = parse_header(path, &header, len)?;
        if let Some(req) = requested {
            if req != found {
                return Err(SegmentError::LayoutMismatch {
                    path: path.to_path_buf(),
                    found,
                    requested: req,
                });
            }
        }
        let map = MmapRaw::map_raw(&file).map_err(io_err(path))?;
        if (map.len() as u64) < found.segment_len() as u64 {
            return Err(SegmentError::Truncated {
                path: path.to_path_buf(),
                len: map.len() as u64,
                need: found.segment_len() as u64,
            });
        }
        Ok(Segment {
            inner: Arc::new(Inner::new(map, found, path.to_path_buf())),
        })
    }

    fn map_and_init(path: &Path, file: &File, layout: Layout) -> Result<Segment, SegmentError> {
        let map = MmapRaw::map_raw(file).map_err(io_err(path))?;
        if map.len() < layout.segment_len() {
            return Err(SegmentError::Truncated {
                path: path.to_path_buf(),
                len: map.len() as u64,
                need: layout.segment_len() as u64,
            });
        }
        let inner = Inner::new(map, layout, path.to_path_buf());
        write_header(&inner);
        Ok(Segment {
            inner: Arc::new(inner),
        })
    }

    /// The segment's layout (from its header).
    pub fn layout(&self) -> Layout {
        self.inner.layout
    }

    /// The path the segment was opened from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The region of box `id`. Any box may read it; only box `id` (or the
    /// replication receiver holding its replica) may write it.
    pub fn region(&self, id: u16) -> Result<Region, SegmentError> {
        if id >= self.inner.layout.regions {
            return Err(SegmentError::NoSuchRegion {
                id,
                regions: self.inner.layout.regions,
            });
        }
        Ok(Region {
            seg: self.clone(),
            id,
        })
    }

    /// The box table entry of box `id`, a shortcut for
    /// `segment.region(id)?.box_info()`.
    pub fn box_info(&self, id: u16) -> Result<crate::BoxInfo, crate::BoxTableError> {
        let r = self
            .region(id)
            .map_err(|_| crate::BoxTableError::NoSuchBox(id))?;
        r.box_info()
    }
}

/// One box's region: its box table entry and its slots. Cheap to clone,
/// `Send` and `Sync`.
#[derive(Clone, Debug)]
pub struct Region {
    pub(crate) seg: Segment,
    pub(crate) id: u16,
}

impl Region {
    /// The box id (region index) this region belongs to.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Slots in this region.
    pub fn slot_count(&self) -> u32 {
        self.seg.inner.layout.slots_per_region
    }

    /// Seqlocked units in this region: the slots, then the overflow pieces
    /// (what replication ships).
    pub(crate) fn unit_count(&self) -> u32 {
        self.seg.inner.layout.units_per_region()
    }

    /// The segment this region lives in.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.seg.inner
    }

    pub(crate) fn offset(&self) -> usize {
        self.seg.inner.layout.region_offset(self.id)
    }
}

/// A temporary name next to `path`, unique per call (process id and a
/// process-wide counter), so concurrent creators never share one.
fn tmp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    path.with_file_name(name)
}

fn write_header(inner: &Inner) {
    let l = inner.layout;
    // SAFETY (all): header offsets are fixed, aligned and inside the first page.
    unsafe {
        inner
            .u32_at(H_VERSION)
            .store(LAYOUT_VERSION, Ordering::Relaxed);
        inner
            .u32_at(H_SLOT_SIZE)
            .store(l.slot_size, Ordering::Relaxed);
        inner
            .u32_at(H_SLOTS)
            .store(l.slots_per_region, Ordering::Relaxed);
        inner
            .u32_at(H_REGIONS)
            .store(l.regions as u32, Ordering::Relaxed);
        inner
            .u32_at(H_BOX_ENTRY)
            .store(BOX_ENTRY_SIZE as u32, Ordering::Relaxed);
        inner
            .u32_at(H_HEADER_SIZE)
            .store(HEADER_SIZE as u32, Ordering::Relaxed);
        inner
            .u64_at(H_STRIDE)
            .store(l.region_stride() as u64, Ordering::Relaxed);
        inner
            .u64_at(H_TOTAL)
            .store(l.segment_len() as u64, Ordering::Relaxed);
        inner
            .u32_at(H_OVERFLOW)
            .store(l.overflow_entries(), Ordering::Relaxed);
        inner
            .u32_at(H_PIECES)
            .store(l.overflow_pieces(), Ordering::Relaxed);
        inner
            .u64_at(H_SUM)
            .store(geometry_sum(&l), Ordering::Relaxed);
        // The magic goes last, with Release: whoever sees it sees the rest.
        inner.u64_at(H_MAGIC).store(MAGIC, Ordering::Release);
    }
}

fn le_u64(b: &[u8; H_GEOMETRY], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(w)
}

fn le_u32(b: &[u8; H_GEOMETRY], off: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(w)
}

/// FNV-1a (64-bit) over the geometry fields of `l` as the header stores
/// them (offsets 8..56).
fn geometry_sum(l: &Layout) -> u64 {
    let mut bytes = Vec::with_capacity(48);
    for w in [
        LAYOUT_VERSION,
        l.slot_size,
        l.slots_per_region,
        u32::from(l.regions),
        BOX_ENTRY_SIZE as u32,
        HEADER_SIZE as u32,
    ] {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    for w in [l.region_stride() as u64, l.segment_len() as u64] {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    for w in [l.overflow_entries(), l.overflow_pieces()] {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Checks every header field against what this build computes, so a
/// segment is either understood exactly or refused.
fn parse_header(path: &Path, h: &[u8; H_GEOMETRY], file_len: u64) -> Result<Layout, SegmentError> {
    let magic = le_u64(h, H_MAGIC);
    if magic != MAGIC {
        return Err(SegmentError::BadMagic {
            path: path.to_path_buf(),
            found: magic,
        });
    }
    let version = le_u32(h, H_VERSION);
    if version != LAYOUT_VERSION {
        return Err(SegmentError::VersionMismatch {
            path: path.to_path_buf(),
            found: version,
        });
    }
    let bad = |field, found: u64, expected: u64| SegmentError::BadHeader {
        path: path.to_path_buf(),
        field,
        found,
        expected,
    };
    let entry = le_u32(h, H_BOX_ENTRY);
    if entry as usize != BOX_ENTRY_SIZE {
        return Err(bad("box_entry_size", entry as u64, BOX_ENTRY_SIZE as u64));
    }
    let hs = le_u32(h, H_HEADER_SIZE);
    if hs as usize != HEADER_SIZE {
        return Err(bad("header_size", hs as u64, HEADER_SIZE as u64));
    }
    let regions = le_u32(h, H_REGIONS);
    if regions == 0 || regions > u16::MAX as u32 {
        return Err(bad("regions", regions as u64, 1));
    }
    let layout = Layout {
        regions: regions as u16,
        slots_per_region: le_u32(h, H_SLOTS),
        slot_size: le_u32(h, H_SLOT_SIZE),
    };
    match layout.problem() {
        None => {}
        Some(LayoutProblem::SlotSize) => {
            return Err(bad("slot_size", layout.slot_size as u64, SLOT_SIZE as u64))
        }
        Some(_) => return Err(bad("slots_per_region", layout.slots_per_region as u64, 1)),
    }
    let stride = le_u64(h, H_STRIDE);
    if stride != layout.region_stride() as u64 {
        return Err(bad("region_stride", stride, layout.region_stride() as u64));
    }
    let total = le_u64(h, H_TOTAL);
    if total != layout.segment_len() as u64 {
        return Err(bad("segment_len", total, layout.segment_len() as u64));
    }
    let entries = le_u32(h, H_OVERFLOW);
    if entries != layout.overflow_entries() {
        return Err(bad(
            "overflow_entries",
            entries as u64,
            layout.overflow_entries() as u64,
        ));
    }
    let pieces = le_u32(h, H_PIECES);
    if pieces != layout.overflow_pieces() {
        return Err(bad(
            "overflow_pieces",
            pieces as u64,
            layout.overflow_pieces() as u64,
        ));
    }
    let sum = le_u64(h, H_SUM);
    if sum != geometry_sum(&layout) {
        return Err(bad("geometry_sum", sum, geometry_sum(&layout)));
    }
    if file_len < total {
        return Err(SegmentError::Truncated {
            path: path.to_path_buf(),
            len: file_len,
            need: total,
        });
    }
    Ok(layout)
}

fn is_zero_file(file: &File, len: u64) -> bool {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0).is_ok() && buf.iter().all(|&b| b == 0)
}

/// Refuses a segment file (checked on the open descriptor, so a symlink's
/// target is what counts) owned by another user or writable by group or
/// others.
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), SegmentError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mode = meta.mode() & 0o7777;
    if meta.uid() != me || mode & 0o022 != 0 {
        return Err(SegmentError::NotPrivate {
            path: path.to_path_buf(),
            uid: meta.uid(),
            mode,
            me,
        });
    }
    Ok(())
}
