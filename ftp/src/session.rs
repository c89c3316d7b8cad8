//! The control connection of one FTP session as a sans-IO state machine:
//! command lines and virtual time in, [`Action`]s for the host out (send
//! reply bytes, open a passive listener, connect actively, stream an object
//! from an offset, close the data connection). Read-only and anonymous.
//!
//! Must not know sockets, the clock, the cache or the segment: the host
//! owns those, tells the session what happened on the data connection
//! (`data_connected`, `transfer_done`, ...) and passes the time in.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use crate::addr::{self, BounceError};
use crate::command::{self, Command, ParseError, TransferType};
use crate::listing::{self, Catalog};
use crate::reply::Reply;

/// Limits and the passive range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// First and last passive data port (inclusive).
    pub passive_ports: (u16, u16),
    /// Longest command line accepted, CRLF excluded (RFC 959 has no limit;
    /// 512 is what servers use).
    pub max_line: usize,
    /// Idle time after which the control connection is closed with 421,
    /// in the host's virtual milliseconds. Not counted during a transfer.
    pub idle_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            passive_ports: (40000, 40999),
            max_line: 512,
            idle_timeout_ms: 300_000,
        }
    }
}

/// What goes on the data connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataKind {
    /// The object's bytes from `offset` to its end (`size`).
    Retr {
        /// Object name.
        object: String,
        /// First byte to send (REST).
        offset: u64,
        /// The object's length as the catalog gave it.
        size: u64,
    },
    /// A listing the session formatted.
    Listing(Vec<u8>),
}

/// What the host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes on the control connection.
    Send(Vec<u8>),
    /// Listen for the data connection on this port of the service address.
    OpenPassive {
        /// The port.
        port: u16,
    },
    /// Connect the data connection to the client at this address.
    ConnectActive {
        /// The client's data address (already checked: no bounce).
        addr: SocketAddr,
    },
    /// Start sending on the data connection.
    StartTransfer(DataKind),
    /// Refuse the data connection just accepted (wrong peer); the listener
    /// stays open for the right one.
    RefuseData,
    /// Close the data connection and any passive listener.
    CloseData,
    /// Close the control connection (after sending what precedes).
    Close,
}

/// Login progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// No USER yet (or a refused one).
    None,
    /// Anonymous USER accepted, PASS expected.
    UserOk,
    /// Logged in.
    LoggedIn,
}

/// The data channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    /// None set up.
    None,
    /// A passive listener on `port`; `connected` once the client came.
    Passive {
        /// Listening port.
        port: u16,
        /// The client's data connection was accepted.
        connected: bool,
    },
    /// Active mode to `addr`; `connected` once the host's connect succeeded.
    Active {
        /// The client's data address.
        addr: SocketAddr,
        /// Connected.
        connected: bool,
    },
}

/// What a transfer sends, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    /// RETR of an object.
    Retr,
    /// LIST.
    List,
    /// NLST.
    Nlst,
    /// MLSD.
    Mlsd,
}

/// Where a transfer command stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfer {
    /// Waiting for the data connection; 150 not sent yet.
    Pending(DataKind),
    /// Started: 150 sent, the client waits for 226.
    Running(DataKind),
}

/// Counters that prove refusals happened (for /metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Command lines processed.
    pub commands: u64,
    /// Lines over `max_line`.
    pub overlong: u64,
    /// PORT/EPRT refused as a bounce (RFC 2577).
    pub bounces: u64,
    /// Data connections from another address than the client's.
    pub foreign_data: u64,
    /// Lines answered 500/501/502/504.
    pub rejected: u64,
}

/// Lines queued while a transfer runs (clients pipeline at most a few).
const MAX_QUEUED: usize = 8;

/// One FTP control session.
#[derive(Debug, Clone)]
pub struct Session {
    pub(crate) config: Config,
    pub(crate) client: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) login: Login,
    pub(crate) user: String,
    pub(crate) cwd: String,
    pub(crate) ty: TransferType,
    pub(crate) rest: Option<u64>,
    pub(crate) data: Data,
    pub(crate) transfer: Option<Transfer>,
    pub(crate) last_activity: u64,
    pub(crate) next_port: u16,
    pub(crate) closed: bool,
    /// Which listing a Listing transfer is (for its checkpoint).
    pub(crate) listing_kind: TransferKind,
    pub(crate) inbuf: Vec<u8>,
    pub(crate) discarding: bool,
    pub(crate) queued: VecDeque<Vec<u8>>,
    counters: Counters,
}

impl Session {
    /// A new session on an accepted control connection: `client` is the
    /// peer, `local` the service address it reached. Returns the 220.
    pub fn new(
        config: Config,
        client: SocketAddr,
        local: SocketAddr,
        now: u64,
    ) -> (Self, Vec<Action>) {
        let s = Self::blank(config, client, local, now);
        (
            s,
            vec![send(Reply::new(
                220,
                "Baton FTP ready (anonymous, read-only)",
            ))],
        )
    }

    pub(crate) fn blank(config: Config, client: SocketAddr, local: SocketAddr, now: u64) -> Self {
        let (lo, hi) = config.passive_ports;
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        // Spread sessions over the range by client port so that two boxes
        // restoring sessions rarely start their search at the same port.
        let next_port = lo.saturating_add((u32::from(client.port()) % span) as u16);
        Session {
            config,
            client,
            local,
            login: Login::None,
            user: String::new(),
            cwd: "/".to_string(),
            ty: TransferType::Ascii,
            rest: None,
            data: Data::None,
            transfer: None,
            last_activity: now,
            next_port,
            closed: false,
            listing_kind: TransferKind::List,
            inbuf: Vec::new(),
            discarding: false,
            queued: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// The same session with another passive range (a host that binds
    /// its passive port before the session names it narrows the range to
    /// that port).
    pub fn with_passive_ports(mut self, range: (u16, u16)) -> Self {
        self.config.passive_ports = range;
        self.next_port = range.0;
        self
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }
    /// Login progress.
    pub fn login(&self) -> Login {
        self.login
    }
    /// The data channel.
    pub fn data(&self) -> Data {
        self.data
    }
    /// The transfer in progress or waiting for its data connection.
    pub fn transfer(&self) -> Option<&Transfer> {
        self.transfer.as_ref()
    }
    /// The REST offset waiting for a RETR.
    pub fn pending_rest(&self) -> Option<u64> {
        self.rest
    }
    /// The representation type.
    pub fn transfer_type(&self) -> TransferType {
        self.ty
    }
    /// True once QUIT, a timeout or a fatal limit closed the session.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Bytes from the control connection. `port_free` says whether a
    /// passive port may be used (not bound by another session).
    pub fn on_input(
        &mut self,
        bytes: &[u8],
        now: u64,
        catalog: &dyn Catalog,
        port_free: &dyn Fn(u16) -> bool,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if self.closed {
            return out;
        }
        self.last_activity = now;
        for &b in bytes {
            if self.discarding {
                if b == b'\n' {
                    self.discarding = false;
                }
                continue;
            }
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.inbuf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.line(strip_telnet(&line), catalog, port_free, &mut out);
                if self.closed {
                    return out;
                }
                continue;
            }
            self.inbuf.push(b);
            if self.inbuf.len() > self.config.max_line + 1 {
                self.inbuf.clear();
                self.discarding = true;
                self.counters.overlong += 1;
                out.push(send(Reply::new(500, "Command line too long")));
            }
        }
        out
    }

    /// Virtual time passes: closes an idle session with 421.
    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        // A running transfer is progress; one waiting for a data
        // connection that never comes is not, and must not hold the
        // session (and its passive port) for ever.
        if self.closed || matches!(self.transfer, Some(Transfer::Running(_))) {
            return Vec::new();
        }
        if now.saturating_sub(self.last_activity) >= self.config.idle_timeout_ms {
            self.closed = true;
            let mut out = Vec::new();
            if self.data != Data::None || self.transfer.is_some() {
                out.push(Action::CloseData);
            }
            self.transfer = None;
            self.data = Data::None;
            out.push(send(Reply::new(421, "Timeout: closing control connection")));
            out.push(Action::Close);
            return out;
        }
        Vec::new()
    }

    /// The host accepted (passive) or completed (active) a data connection
    /// whose peer address is `peer`.
    pub fn data_connected(&mut self, peer: IpAddr, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if addr::canonical(peer) != addr::canonical(self.client.ip()) {
            // RFC 2577 §3's other half: a data connection stolen by a third
            // party. Refuse it and keep waiting for the client's own.
            self.counters.foreign_data += 1;
            out.push(Action::RefuseData);
            return out;
        }
        match &mut self.data {
            Data::Passive { connected, .. } | Data::Active { connected, .. } => *connected = true,
            Data::None => {
                out.push(Action::RefuseData);
                return out;
            }
        }
        self.last_activity = now;
        self.start_if_ready(&mut out);
        out
    }

    /// The active connect failed.
    pub fn data_connect_failed(&mut self, now: u64) -> Vec<Action> {
        self.last_activity = now;
        self.data = Data::None;
        let mut out = vec![Action::CloseData];
        if self.transfer.take().is_some() {
            out.push(send(Reply::new(425, "Can't open data connection")));
        }
        out
    }

    /// The transfer's last byte was acknowledged: 226, data closed. Lines
    /// queued meanwhile are processed.
    pub fn transfer_done(
        &mut self,
        now: u64,
        catalog: &dyn Catalog,
        port_free: &dyn Fn(u16) -> bool,
    ) -> Vec<Action> {
        self.finish(
            now,
            Reply::new(226, "Transfer complete"),
            catalog,
            port_free,
        )
    }

    /// The data connection broke mid-transfer: 426.
    pub fn transfer_failed(
        &mut self,
        now: u64,
        catalog: &dyn Catalog,
        port_free: &dyn Fn(u16) -> bool,
    ) -> Vec<Action> {
        self.finish(
            now,
            Reply::new(426, "Connection closed; transfer aborted"),
            catalog,
            port_free,
        )
    }

    fn finish(
        &mut self,
        now: u64,
        reply: Reply,
        catalog: &dyn Catalog,
        port_free: &dyn Fn(u16) -> bool,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if !matches!(self.transfer, Some(Transfer::Running(_))) {
            return out;
        }
        self.transfer = None;
        self.data = Data::None;
        self.last_activity = now;
        out.push(Action::CloseData);
        out.push(send(reply));
        while let Some(line) = self.queued.pop_front() {
            self.line(line, catalog, port_free, &mut out);
            if self.closed || self.transfer.is_some() {
                break;
            }
        }
        out
    }

    fn line(
        &mut self,
        line: Vec<u8>,
        catalog: &dyn Catalog,
        port_free: &dyn Fn(u16) -> bool,
        out: &mut Vec<Action>,
    ) {
        if line.len() > self.config.max_line {
            self.counters.overlong += 1;
            out.push(send(Reply::new(500, "Command line too long")));
            return;
        }
        self.counters.commands += 1;
        let cmd = match command::parse(&line) {
            Ok(c) => c,
            Err(e) => {
                self.counters.rejected += 1;
                let reply = match e {
                    ParseError::Unrecognized | ParseError::NotText => {
                        Reply::new(500, "Syntax error, command unrecognized")
                    }
                    ParseError::BadArgument => {
                        Reply::new(501, "Syntax error in parameters or arguments")
                    }
                    ParseError::ParameterNotImplemented if is_eprt(&line) => {
                        Reply::new(522, "Network protocol not supported, use (1,2)")
                    }
                    ParseError::ParameterNotImplemented => {
                        Reply::new(504, "Command not implemented for that parameter")
                    }
                };
                out.push(send(reply));
                return;
            }
        };
        if self.transfer.is_some() && !matches!(cmd, Command::Abor | Command::Quit) {
            // The client waits for 150/226 first; answering now would put
            // replies out of order. Queue, bounded.
            if self.queued.len() >= MAX_QUEUED {
                self.close_with(out, Reply::new(421, "Too many commands during a transfer"));
            } else {
                self.queued.push_back(line);
            }
            return;
        }
        self.execute(cmd, catalog, port_free, out);
    }

    fn close_with(&mut self, out: &mut Vec<Action>, reply: Reply) {
        self.closed = true;
        if self.data != Data::None || self.transfer.is_some() {
            out.push(Action::CloseData);
        }
        self.transfer = None;
        self.data = Data::None;
        out.push(send(reply));
        out.push(Action::Close);
    }

    fn execute(
        &mut self,
        cmd: Command,
        catalog: &dyn Catalog,
        port_free: &dyn Fn(u16) -> bool,
        out: &mut Vec<Action>,
    ) {
        let logged_in = self.login == Login::LoggedIn;
        let needs_login = !matches!(
            cmd,
            Command::User(_)
                | Command::Pass
                | Command::Syst
                | Command::Feat
                | Command::Opts(_)
                | Command::Noop
                | Command::Quit
        );
        if needs_login && !logged_in {
            out.push(send(Reply::new(530, "Please login with USER and PASS")));
            return;
        }
        // RFC 3659 §5.3: REST applies to the transfer command that follows
        // it; anything else in between cancels it.
        if !matches!(cmd, Command::Retr(_) | Command::Rest(_)) {
            self.rest = None;
        }
        let reply = match cmd {
            Command::User(name) => {
                if logged_in {
                    Reply::new(530, "Already logged in")
                } else if name.eq_ignore_ascii_case("anonymous") || name.eq_ignore_ascii_case("ftp")
                {
                    self.login = Login::UserOk;
                    self.user = "anonymous".to_string();
                    Reply::new(331, "Anonymous login ok, send your e-mail as password")
                } else {
                    self.login = Login::None;
                    Reply::new(530, "Only anonymous login is allowed")
                }
            }
            Command::Pass => match self.login {
                Login::UserOk => {
                    self.login = Login::LoggedIn;
                    Reply::new(230, "Login successful")
                }
                Login::LoggedIn => Reply::new(230, "Already logged in"),
                Login::None => Reply::new(503, "Login with USER first"),
            },
            Command::Syst => Reply::new(215, "UNIX Type: L8"),
            Command::Feat => Reply::multi(
                211,
                [
                    "Features:",
                    "EPRT",
                    "EPSV",
                    "MDTM",
                    "PASV",
                    "REST STREAM",
                    "SIZE",
                    "TVFS",
                    "UTF8",
                    "End",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ),
            Command::Opts(arg) => match arg.as_str() {
                "UTF8 ON" | "UTF8" => Reply::new(200, "Always in UTF8 mode"),
                _ => Reply::new(501, "Option not understood"),
            },
            Command::Type(t) => {
                self.ty = t;
                match t {
                    TransferType::Image => Reply::new(200, "Switching to Binary mode"),
                    TransferType::Ascii => Reply::new(200, "Switching to ASCII mode"),
                }
            }
            Command::ModeStream => Reply::new(200, "Mode set to S"),
            Command::StruFile => Reply::new(200, "Structure set to F"),
            Command::Pwd => Reply::new(257, format!("\"{}\" is the current directory", self.cwd)),
            Command::Cwd(path) => {
                if matches!(path.trim_end_matches('/'), "" | "." | "..") || path == "/" {
                    Reply::new(250, "Directory successfully changed")
                } else {
                    Reply::new(550, "No such directory")
                }
            }
            Command::Cdup => Reply::new(250, "Directory successfully changed"),
            Command::Size(path) => match lookup(catalog, &path) {
                Some(e) => Reply::new(213, e.size.to_string()),
                None => Reply::new(550, "No such file"),
            },
            Command::Mdtm(path) => match lookup(catalog, &path) {
                Some(e) => Reply::new(213, listing::time_val(e.modified)),
                None => Reply::new(550, "No such file"),
            },
            Command::Rest(offset) => {
                self.rest = Some(offset);
                Reply::new(350, format!("Restarting at {offset}. Send RETR"))
            }
            Command::Retr(path) => {
                let offset = self.rest.take().unwrap_or(0);
                let Some(e) = lookup(catalog, &path) else {
                    out.push(send(Reply::new(550, "No such file")));
                    return;
                };
                if offset > e.size {
                    out.push(send(Reply::new(554, "REST offset beyond end of file")));
                    return;
                }
                self.begin(
                    DataKind::Retr {
                        object: e.name,
                        offset,
                        size: e.size,
                    },
                    out,
                );
                return;
            }
            Command::List | Command::Nlst | Command::Mlsd => {
                let entries = catalog.list();
                let (kind, bytes) = match cmd {
                    Command::List => (TransferKind::List, listing::list_bytes(&entries)),
                    Command::Nlst => (TransferKind::Nlst, listing::nlst_bytes(&entries)),
                    _ => (TransferKind::Mlsd, listing::mlsd_bytes(&entries)),
                };
                self.listing_kind = kind;
                self.begin(DataKind::Listing(bytes), out);
                return;
            }
            Command::Pasv | Command::Epsv => {
                let IpAddr::V4(v4) = addr::canonical(self.local.ip()) else {
                    if cmd == Command::Pasv {
                        out.push(send(Reply::new(502, "PASV needs IPv4; use EPSV")));
                        return;
                    }
                    return self.passive(None, port_free, out);
                };
                let ip = (cmd == Command::Pasv).then_some(v4);
                return self.passive(ip, port_free, out);
            }
            Command::Port(target) | Command::Eprt(target) => {
                match addr::check_active(target, self.client.ip()) {
                    Ok(()) => {
                        if matches!(self.data, Data::Passive { .. }) {
                            out.push(Action::CloseData);
                        }
                        self.data = Data::Active {
                            addr: target,
                            connected: false,
                        };
                        Reply::new(200, "PORT command successful")
                    }
                    Err(BounceError::ThirdParty) | Err(BounceError::PrivilegedPort) => {
                        self.counters.bounces += 1;
                        Reply::new(504, "Data address must be your own, port 1024 or above")
                    }
                }
            }
            Command::Abor => {
                if self.transfer.take().is_some() {
                    self.data = Data::None;
                    self.queued.clear();
                    out.push(Action::CloseData);
                    out.push(send(Reply::new(426, "Connection closed; transfer aborted")));
                    Reply::new(226, "Abort successful")
                } else {
                    Reply::new(225, "No transfer to abort")
                }
            }
            Command::Noop => Reply::new(200, "NOOP ok"),
            Command::Quit => {
                self.close_with(out, Reply::new(221, "Goodbye"));
                return;
            }
            Command::NotImplemented(_) => {
                self.counters.rejected += 1;
                Reply::new(502, "Command not implemented (read-only server)")
            }
        };
        out.push(send(reply));
    }

    fn passive(
        &mut self,
        pasv_ip: Option<std::net::Ipv4Addr>,
        port_free: &dyn Fn(u16) -> bool,
        out: &mut Vec<Action>,
    ) {
        let (lo, hi) = self.config.passive_ports;
        if lo == 0 || lo > hi {
            out.push(send(Reply::new(425, "No passive ports configured")));
            return;
        }
        let own = match self.data {
            Data::Passive { port, .. } => Some(port),
            _ => None,
        };
        let span = u32::from(hi - lo) + 1;
        let start = self.next_port.clamp(lo, hi);
        let mut chosen = None;
        for i in 0..span {
            let p = lo + ((u32::from(start - lo) + i) % span) as u16;
            if Some(p) != own && port_free(p) {
                chosen = Some(p);
                break;
            }
        }
        let Some(port) = chosen else {
            out.push(send(Reply::new(425, "No passive port free")));
            return;
        };
        self.next_port = if port == hi { lo } else { port + 1 };
        if self.data != Data::None {
            out.push(Action::CloseData);
        }
        self.data = Data::Passive {
            port,
            connected: false,
        };
        out.push(Action::OpenPassive { port });
        let reply = match pasv_ip {
            Some(ip) => Reply::new(227, addr::pasv_text(ip, port)),
            None => Reply::new(229, addr::epsv_text(port)),
        };
        out.push(send(reply));
    }

    fn begin(&mut self, kind: DataKind, out: &mut Vec<Action>) {
        match self.data {
            Data::None => {
                out.push(send(Reply::new(425, "Use PASV, EPSV, PORT or EPRT first")));
            }
            Data::Active { addr, connected } => {
                self.transfer = Some(Transfer::Pending(kind));
                if connected {
                    self.start_if_ready(out);
                } else {
                    out.push(Action::ConnectActive { addr });
                }
            }
            Data::Passive { .. } => {
                self.transfer = Some(Transfer::Pending(kind));
                self.start_if_ready(out);
            }
        }
    }

    fn start_if_ready(&mut self, out: &mut Vec<Action>) {
        let connected = matches!(
            self.data,
            Data::Passive {
                connected: true,
                ..
            } | Data::Active {
                connected: true,
                ..
            }
        );
        if !connected {
            return;
        }
        let Some(Transfer::Pending(kind)) = self.transfer.take() else {
            return;
        };
        let mode = match self.ty {
            TransferType::Image => "BINARY",
            TransferType::Ascii => "ASCII",
        };
        let text = match &kind {
            DataKind::Retr {
                object,
                offset,
                size,
            } => format!(
                "Opening {mode} mode data connection for {object} ({} bytes)",
                size - offset
            ),
            DataKind::Listing(_) => "Here comes the directory listing".to_string(),
        };
        out.push(send(Reply::new(150, text)));
        out.push(Action::StartTransfer(kind.clone()));
        self.transfer = Some(Transfer::Running(kind));
    }
}

fn lookup(catalog: &dyn Catalog, path: &str) -> Option<listing::Entry> {
    listing::object_name(path).and_then(|n| catalog.get(n))
}

fn send(r: Reply) -> Action {
    Action::Send(r.to_bytes())
}

fn is_eprt(line: &[u8]) -> bool {
    line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"EPRT")
}

/// Drops Telnet IAC commands (RFC 854) some clients send before ABOR
/// (IAC IP, IAC DM); IAC IAC stands for one 0xFF byte.
fn strip_telnet(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] == 0xFF {
            match line.get(i + 1) {
                Some(0xFF) => out.push(0xFF),
                // WILL/WONT/DO/DONT carry an option byte.
                Some(0xFB..=0xFE) => i += 1,
                _ => {}
            }
            i += 2;
            continue;
        }
        out.push(line[i]);
        i += 1;
    }
    out
}
