//! The records of an FTP bundle (issue 17): a control record (the session:
//! user, cwd, type, pending REST, data channel, the reply the client waits
//! for) and a data record (the object being sent, the REST offset, the TCP
//! sequence of the object's first byte sent, the passive port), as fixed
//! little-endian layouts with a magic and a version, and
//! [`Session::restore`] from them.
//!
//! Decoding bytes from the segment never panics: every field is checked
//! and errors are [`DecodeError`]. Knows nothing of the segment, slots or
//! seqlocks: the host stores these bytes beside the TCP records.
//!
//! Control record (version 1, [`CONTROL_LEN`] bytes):
//!
//! | off | len | field |
//! |----:|----:|-------|
//! | 0 | 4 | magic `BFTC` |
//! | 4 | 2 | version (1) |
//! | 6 | 1 | login: 0 none, 1 USER ok, 2 logged in |
//! | 7 | 1 | type: 0 ASCII, 1 image |
//! | 8 | 1 | flags: 1 REST pending |
//! | 9 | 1 | data channel: 0 none, 1 passive, 2 active |
//! | 10 | 1 | data connected (0/1) |
//! | 11 | 1 | transfer: 0 none, 1 pending, 2 running |
//! | 12 | 1 | transfer kind: 0 none, 1 RETR, 2 LIST, 3 NLST, 4 MLSD |
//! | 13 | 1 | active address family: 0 none, 4, 6 |
//! | 14 | 2 | awaited reply: 0 none, 150 (pending), 226 (running) |
//! | 16 | 8 | REST offset |
//! | 24 | 2 | passive port; in active mode the local port of the data connection (0: none) |
//! | 26 | 2 | next passive port to try |
//! | 28 | 16 | active address (IPv4 in the first 4 bytes) |
//! | 44 | 2 | active port |
//! | 46 | 1 | user length |
//! | 47 | 32 | user |
//! | 79 | 1 | cwd length |
//! | 80 | 64 | cwd |
//!
//! Data record (version 1, [`DATA_LEN`] bytes):
//!
//! | off | len | field |
//! |----:|----:|-------|
//! | 0 | 4 | magic `BFTD` |
//! | 4 | 2 | version (1) |
//! | 6 | 1 | kind: 1 RETR, 2 LIST, 3 NLST, 4 MLSD |
//! | 7 | 1 | reserved (0) |
//! | 8 | 8 | REST offset (object byte the transfer started at) |
//! | 16 | 8 | object size |
//! | 24 | 4 | TCP sequence number of the first byte sent |
//! | 28 | 2 | passive port (0 for active mode) |
//! | 30 | 2 | object name length |
//! | 32 | 256 | object name |

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::command::TransferType;
use crate::listing::{self, Catalog};
use crate::session::{Action, Config, Data, DataKind, Login, Session, Transfer, TransferKind};

/// Length of a control record.
pub const CONTROL_LEN: usize = 144;
/// Length of a data record.
pub const DATA_LEN: usize = 288;
/// Longest object name a data record holds.
pub const MAX_OBJECT: usize = 256;
const CONTROL_MAGIC: &[u8; 4] = b"BFTC";
const DATA_MAGIC: &[u8; 4] = b"BFTD";
const VERSION: u16 = 1;
const MAX_USER: usize = 32;
const MAX_CWD: usize = 64;

/// Why bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the layout.
    #[error("record truncated: {got} of {need} bytes")]
    Truncated {
        /// Bytes the layout needs.
        need: usize,
        /// Bytes given.
        got: usize,
    },
    /// Not this record's magic.
    #[error("bad magic")]
    BadMagic,
    /// A version this build does not read.
    #[error("unsupported record version {0}")]
    UnsupportedVersion(u16),
    /// A field out of its range.
    #[error("invalid field {0}")]
    BadField(&'static str),
}

/// Why a session cannot be checkpointed or restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The object name does not fit a data record.
    #[error("object name longer than {MAX_OBJECT} bytes")]
    ObjectTooLong,
    /// A running or pending RETR without its data record.
    #[error("transfer without a data record")]
    MissingData,
    /// The record's active address is not the client's own (or a
    /// privileged port): restoring it would connect to a third party.
    #[error("active data address {0} refused (RFC 2577)")]
    Bounce(SocketAddr),
    /// The record's passive port is outside the configured range.
    #[error("passive port {0} outside the configured range")]
    PassivePort(u16),
    /// A RETR's object is no longer in the catalog.
    #[error("object {0} is not in the catalog")]
    UnknownObject(String),
}

/// The control record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRecord {
    /// Login progress.
    pub login: Login,
    /// User name (always `anonymous` once logged in).
    pub user: String,
    /// Working directory.
    pub cwd: String,
    /// Representation type.
    pub ty: TransferType,
    /// REST waiting for a RETR.
    pub rest: Option<u64>,
    /// Data channel.
    pub data: Data,
    /// Transfer state: None, or (running?, kind).
    pub transfer: Option<(bool, TransferKind)>,
    /// Next passive port the session tries.
    pub next_port: u16,
    /// The local port the host opened an active-mode data connection from
    /// (its choice: the session does not know it; the host sets it before
    /// encoding), 0 for none. Stored in the passive port's field.
    pub active_port: u16,
}

impl ControlRecord {
    /// Length of the encoding.
    pub const LEN: usize = CONTROL_LEN;

    /// The reply the client is waiting for: 150 before the data connection
    /// came, 226 during a transfer, none when idle.
    pub fn awaited_reply(&self) -> u16 {
        match self.transfer {
            None => 0,
            Some((false, _)) => 150,
            Some((true, _)) => 226,
        }
    }

    /// The fixed layout.
    pub fn encode(&self) -> [u8; CONTROL_LEN] {
        let mut b = [0u8; CONTROL_LEN];
        b[0..4].copy_from_slice(CONTROL_MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[6] = match self.login {
            Login::None => 0,
            Login::UserOk => 1,
            Login::LoggedIn => 2,
        };
        b[7] = u8::from(self.ty == TransferType::Image);
        b[8] = u8::from(self.rest.is_some());
        let (chan, connected, pport, active) = match self.data {
            Data::None => (0, false, 0, None),
            Data::Passive { port, connected } => (1, connected, port, None),
            Data::Active { addr, connected } => (2, connected, self.active_port, Some(addr)),
        };
        b[9] = chan;
        b[10] = u8::from(connected);
        if let Some((running, kind)) = self.transfer {
            b[11] = if running { 2 } else { 1 };
            b[12] = kind_code(kind);
        }
        if let Some(a) = active {
            match a.ip() {
                IpAddr::V4(v4) => {
                    b[13] = 4;
                    b[28..32].copy_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    b[13] = 6;
                    b[28..44].copy_from_slice(&v6.octets());
                }
            }
            b[44..46].copy_from_slice(&a.port().to_le_bytes());
        }
        b[14..16].copy_from_slice(&self.awaited_reply().to_le_bytes());
        b[16..24].copy_from_slice(&self.rest.unwrap_or(0).to_le_bytes());
        b[24..26].copy_from_slice(&pport.to_le_bytes());
        b[26..28].copy_from_slice(&self.next_port.to_le_bytes());
        put_str(&mut b[46..46 + 1 + MAX_USER], &self.user);
        put_str(&mut b[79..79 + 1 + MAX_CWD], &self.cwd);
        b
    }

    /// Reads a record from segment bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        header(b, CONTROL_MAGIC, CONTROL_LEN)?;
        let login = match b[6] {
            0 => Login::None,
            1 => Login::UserOk,
            2 => Login::LoggedIn,
            _ => return Err(DecodeError::BadField("login")),
        };
        let ty = match b[7] {
            0 => TransferType::Ascii,
            1 => TransferType::Image,
            _ => return Err(DecodeError::BadField("type")),
        };
        let rest = match b[8] {
            0 => None,
            1 => Some(u64_at(b, 16)),
            _ => return Err(DecodeError::BadField("flags")),
        };
        let connected = match b[10] {
            0 => false,
            1 => true,
            _ => return Err(DecodeError::BadField("data connected")),
        };
        let active = match b[13] {
            0 => None,
            4 => Some(IpAddr::V4(Ipv4Addr::new(b[28], b[29], b[30], b[31]))),
            6 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[28..44]);
                Some(IpAddr::V6(Ipv6Addr::from(o)))
            }
            _ => return Err(DecodeError::BadField("active family")),
        };
        let data = match (b[9], active) {
            (0, None) => Data::None,
            (1, None) => Data::Passive {
                port: u16_at(b, 24),
                connected,
            },
            (2, Some(ip)) => Data::Active {
                addr: SocketAddr::new(ip, u16_at(b, 44)),
                connected,
            },
            _ => return Err(DecodeError::BadField("data channel")),
        };
        let transfer = match (b[11], b[12]) {
            (0, 0) => None,
            (1 | 2, k) => Some((b[11] == 2, kind_from(k)?)),
            _ => return Err(DecodeError::BadField("transfer")),
        };
        let rec = ControlRecord {
            login,
            user: get_str(&b[46..46 + 1 + MAX_USER], "user")?,
            cwd: get_str(&b[79..79 + 1 + MAX_CWD], "cwd")?,
            ty,
            rest,
            data,
            transfer,
            next_port: u16_at(b, 26),
            active_port: if b[9] == 2 { u16_at(b, 24) } else { 0 },
        };
        if u16_at(b, 14) != rec.awaited_reply() {
            return Err(DecodeError::BadField("awaited reply"));
        }
        Ok(rec)
    }
}

/// The data record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRecord {
    /// What is sent.
    pub kind: TransferKind,
    /// The object (empty for listings).
    pub object: String,
    /// REST offset: object byte at `first_seq`.
    pub offset: u64,
    /// Object size.
    pub size: u64,
    /// TCP sequence number of the first byte the transfer sent: the
    /// survivor's object position is `offset + (snd_nxt - first_seq)`.
    pub first_seq: u32,
    /// Passive port (0 in active mode).
    pub passive_port: u16,
}

impl DataRecord {
    /// Length of the encoding.
    pub const LEN: usize = DATA_LEN;

    /// The fixed layout; object names are at most [`MAX_OBJECT`] bytes.
    pub fn encode(&self) -> Result<[u8; DATA_LEN], CheckpointError> {
        if self.object.len() > MAX_OBJECT {
            return Err(CheckpointError::ObjectTooLong);
        }
        let mut b = [0u8; DATA_LEN];
        b[0..4].copy_from_slice(DATA_MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[6] = kind_code(self.kind);
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.size.to_le_bytes());
        b[24..28].copy_from_slice(&self.first_seq.to_le_bytes());
        b[28..30].copy_from_slice(&self.passive_port.to_le_bytes());
        b[30..32].copy_from_slice(&(self.object.len() as u16).to_le_bytes());
        b[32..32 + self.object.len()].copy_from_slice(self.object.as_bytes());
        Ok(b)
    }

    /// Reads a record from segment bytes.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        header(b, DATA_MAGIC, DATA_LEN)?;
        let kind = kind_from(b[6])?;
        if b[7] != 0 {
            return Err(DecodeError::BadField("reserved"));
        }
        let len = usize::from(u16_at(b, 30));
        if len > MAX_OBJECT {
            return Err(DecodeError::BadField("object length"));
        }
        let object = std::str::from_utf8(&b[32..32 + len])
            .map_err(|_| DecodeError::BadField("object"))?
            .to_string();
        let offset = u64_at(b, 8);
        let size = u64_at(b, 16);
        if offset > size {
            return Err(DecodeError::BadField("offset"));
        }
        Ok(DataRecord {
            kind,
            object,
            offset,
            size,
            first_seq: u32::from_le_bytes([b[24], b[25], b[26], b[27]]),
            passive_port: u16_at(b, 28),
        })
    }
}

impl Session {
    /// True when every byte read was answered: no partial line, none
    /// queued behind a transfer (a checkpoint may cover them all).
    pub fn answered_all(&self) -> bool {
        self.inbuf.is_empty() && self.queued.is_empty() && !self.discarding
    }

    /// The records of this session's bundle: the control record, and a
    /// data record while a transfer is pending or running. `first_seq` is
    /// the data connection's sequence number of the transfer's first byte
    /// (the host knows it; 0 before the transfer started).
    pub fn checkpoint(
        &self,
        first_seq: u32,
    ) -> Result<(ControlRecord, Option<DataRecord>), CheckpointError> {
        let transfer = self.transfer.as_ref().map(|t| match t {
            Transfer::Pending(k) => (false, self.kind_of(k)),
            Transfer::Running(k) => (true, self.kind_of(k)),
        });
        let control = ControlRecord {
            login: self.login,
            user: self.user.clone(),
            cwd: self.cwd.clone(),
            ty: self.ty,
            rest: self.rest,
            data: self.data,
            transfer,
            next_port: self.next_port,
            active_port: 0,
        };
        let data = match self.transfer.as_ref() {
            None => None,
            Some(Transfer::Pending(k) | Transfer::Running(k)) => {
                let (object, offset, size) = match k {
                    DataKind::Retr {
                        object,
                        offset,
                        size,
                    } => (object.clone(), *offset, *size),
                    DataKind::Listing(bytes) => (String::new(), 0, bytes.len() as u64),
                };
                if object.len() > MAX_OBJECT {
                    return Err(CheckpointError::ObjectTooLong);
                }
                Some(DataRecord {
                    kind: self.kind_of(k),
                    object,
                    offset,
                    size,
                    first_seq,
                    passive_port: match self.data {
                        Data::Passive { port, .. } => port,
                        _ => 0,
                    },
                })
            }
        };
        Ok((control, data))
    }

    fn kind_of(&self, k: &DataKind) -> TransferKind {
        match k {
            DataKind::Retr { .. } => TransferKind::Retr,
            DataKind::Listing(_) => self.listing_kind,
        }
    }

    /// A survivor's session from a bundle's records. Actions: re-open the
    /// passive listener a client has not reached yet; re-connect an active
    /// data connection not made yet. A running transfer's data connection
    /// is the host's to resume (from its TCP record and `first_seq`); its
    /// `transfer_done` then sends the 226 from here. Listings are
    /// re-formatted from the catalog.
    pub fn restore(
        config: Config,
        client: SocketAddr,
        local: SocketAddr,
        control: &ControlRecord,
        data: Option<&DataRecord>,
        catalog: &dyn Catalog,
        now: u64,
    ) -> Result<(Session, Vec<Action>), CheckpointError> {
        // The segment is not trusted to pick where a survivor connects or
        // listens: the same rules as for PORT/EPRT and PASV/EPSV.
        match control.data {
            Data::Active { addr, .. } if crate::addr::check_active(addr, client.ip()).is_err() => {
                return Err(CheckpointError::Bounce(addr));
            }
            Data::Passive { port, .. }
                if !(config.passive_ports.0..=config.passive_ports.1).contains(&port) =>
            {
                return Err(CheckpointError::PassivePort(port));
            }
            _ => {}
        }
        let mut s = Session::blank(config, client, local, now);
        s.login = control.login;
        s.user = control.user.clone();
        s.cwd = control.cwd.clone();
        s.ty = control.ty;
        s.rest = control.rest;
        s.data = control.data;
        s.next_port = control.next_port;
        let mut out = Vec::new();
        if let Some((running, kind)) = control.transfer {
            let d = data.ok_or(CheckpointError::MissingData)?;
            let dk = match kind {
                TransferKind::Retr => DataKind::Retr {
                    object: d.object.clone(),
                    offset: d.offset,
                    size: d.size,
                },
                TransferKind::List | TransferKind::Nlst | TransferKind::Mlsd => {
                    let entries = catalog.list();
                    s.listing_kind = kind;
                    DataKind::Listing(match kind {
                        TransferKind::List => listing::list_bytes(&entries),
                        TransferKind::Nlst => listing::nlst_bytes(&entries),
                        _ => listing::mlsd_bytes(&entries),
                    })
                }
            };
            if kind == TransferKind::Retr && !running && catalog.get(&d.object).is_none() {
                return Err(CheckpointError::UnknownObject(d.object.clone()));
            }
            s.transfer = Some(if running {
                Transfer::Running(dk)
            } else {
                Transfer::Pending(dk)
            });
        }
        match s.data {
            Data::Passive {
                port,
                connected: false,
            } => out.push(Action::OpenPassive { port }),
            Data::Active {
                addr,
                connected: false,
            } if matches!(s.transfer, Some(Transfer::Pending(_))) => {
                out.push(Action::ConnectActive { addr })
            }
            _ => {}
        }
        Ok((s, out))
    }
}

fn kind_code(k: TransferKind) -> u8 {
    match k {
        TransferKind::Retr => 1,
        TransferKind::List => 2,
        TransferKind::Nlst => 3,
        TransferKind::Mlsd => 4,
    }
}

fn kind_from(c: u8) -> Result<TransferKind, DecodeError> {
    match c {
        1 => Ok(TransferKind::Retr),
        2 => Ok(TransferKind::List),
        3 => Ok(TransferKind::Nlst),
        4 => Ok(TransferKind::Mlsd),
        _ => Err(DecodeError::BadField("transfer kind")),
    }
}

fn header(b: &[u8], magic: &[u8; 4], len: usize) -> Result<(), DecodeError> {
    if b.len() < len {
        return Err(DecodeError::Truncated {
            need: len,
            got: b.len(),
        });
    }
    if &b[0..4] != magic {
        return Err(DecodeError::BadMagic);
    }
    let v = u16_at(b, 4);
    if v != VERSION {
        return Err(DecodeError::UnsupportedVersion(v));
    }
    Ok(())
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Length byte then the string, truncated at a char boundary to fit.
fn put_str(dst: &mut [u8], s: &str) {
    let cap = dst.len() - 1;
    let mut n = s.len().min(cap);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    dst[0] = n as u8;
    dst[1..1 + n].copy_from_slice(&s.as_bytes()[..n]);
}

fn get_str(src: &[u8], field: &'static str) -> Result<String, DecodeError> {
    let n = usize::from(src[0]);
    if n > src.len() - 1 {
        return Err(DecodeError::BadField(field));
    }
    std::str::from_utf8(&src[1..1 + n])
        .map(str::to_string)
        .map_err(|_| DecodeError::BadField(field))
}
