//! The server side of one RTSP connection and its one session: RFC 2326
//! Appendix A's server state machine (Init, Ready, Playing) driven request
//! by request, with the session timeout of §12.37 on the caller's clock.
//!
//! Read first: RFC 2326 §10 (methods), §12.37 (`Session`), §12.39
//! (`Transport`), Appendix A (states). One connection serves one
//! presentation with one stream (an MPEG-TS object at `<url>/trackID=0`),
//! which is what players ask of a TS file.
//!
//! Sans-IO in quinn-proto's manner: no socket, no clock. The methods are
//! getters, inputs ([`Session::handle`], [`Session::handle_timeout`],
//! [`Session::on_activity`]) and [`Session::timeout_at`]; what media to
//! send is the [`Host`]'s business, told through its callbacks. This module
//! knows nothing of RTP packets, caches or the dataplane.

use std::net::IpAddr;

use crate::npt::{format_range, parse_range};
use crate::request::{Method, ParseError, Request};
use crate::response::Response;
use crate::sdp;
use crate::transport::{self, Transport};

/// Methods this server implements, for `Public` and `Allow`.
pub const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER";
const SERVER: &str = "baton";

/// A connection's fixed parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The client's address: the only destination media may go to.
    pub client: IpAddr,
    /// The service address the client connected to.
    pub server: IpAddr,
    /// The server's RTP and RTCP ports for UDP transport.
    pub server_ports: (u16, u16),
    /// Session timeout (§12.37; 60 s by default there).
    pub timeout_ms: u64,
    /// This session's identifier (chosen by the caller, unguessable).
    pub session_id: u64,
    /// The RTP stream's SSRC, announced in the SETUP response.
    pub ssrc: u32,
}

/// Appendix A's server states (RECORD is not served).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No session set up.
    Init,
    /// Set up, not playing (also after PAUSE).
    Ready,
    /// Media flowing.
    Playing,
}

/// What the host knows of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Normal play time of the whole object.
    pub duration_ms: u64,
}

/// Where the stream starts after a PLAY (`RTP-Info`, §12.33).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpInfo {
    /// Sequence number of the first packet sent.
    pub seq: u16,
    /// Its RTP timestamp.
    pub rtptime: u32,
}

/// The media side, called back as requests change what flows.
pub trait Host {
    /// The object at `path` (the URL's path, e.g. `/clip.ts`), if served.
    fn lookup(&mut self, path: &str) -> Option<ObjectInfo>;
    /// Start or move the stream to `from_ms` of `path` over `transport`.
    fn play(&mut self, path: &str, from_ms: u64, transport: Transport) -> RtpInfo;
    /// Stop sending; returns the play position reached.
    fn pause(&mut self) -> u64;
    /// The session ended (TEARDOWN or timeout): drop the stream.
    fn stop(&mut self);
}

/// What a survivor needs to go on with a session (the RTSP bundle's
/// session part; [`crate::bundle`] encodes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The Appendix A state.
    pub state: State,
    /// The object's URL path, once set up.
    pub path: Option<String>,
    /// Its normal play time.
    pub duration_ms: u64,
    /// The agreed transport.
    pub transport: Option<Transport>,
    /// Where a PLAY without a range starts.
    pub paused_at_ms: u64,
}

/// One connection's session machine.
#[derive(Debug, Clone)]
pub struct Session {
    cfg: Config,
    state: State,
    path: Option<String>,
    duration_ms: u64,
    transport: Option<Transport>,
    last_activity_ms: u64,
    paused_at_ms: u64,
    /// Whether RTP over UDP is offered (the host may send datagrams to
    /// this client); else only interleaved transport is chosen.
    udp: bool,
}

impl Session {
    /// A connection with no session yet.
    pub fn new(cfg: Config) -> Session {
        Session {
            cfg,
            state: State::Init,
            path: None,
            duration_ms: 0,
            transport: None,
            last_activity_ms: 0,
            paused_at_ms: 0,
            udp: true,
        }
    }

    /// A session restored from `snap` on a survivor; `now_ms` counts as
    /// activity (the client's timeout restarts on the survivor's clock).
    pub fn restore(cfg: Config, snap: &Snapshot, now_ms: u64) -> Session {
        Session {
            cfg,
            state: snap.state,
            path: snap.path.clone(),
            duration_ms: snap.duration_ms,
            transport: snap.transport,
            last_activity_ms: now_ms,
            paused_at_ms: snap.paused_at_ms,
            udp: true,
        }
    }

    /// The state to checkpoint.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state,
            path: self.path.clone(),
            duration_ms: self.duration_ms,
            transport: self.transport,
            paused_at_ms: self.paused_at_ms,
        }
    }

    /// Whether SETUP may choose RTP over UDP (true by default). A host
    /// that cannot send datagrams to this client (e.g. no UDP egress for
    /// its address family) turns it off: UDP proposals are then skipped,
    /// and a client offering only UDP hears 461 (players then retry with
    /// interleaved TCP).
    pub fn set_udp(&mut self, allowed: bool) {
        self.udp = allowed;
    }

    /// The connection's fixed parameters.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    // Getters.

    /// The Appendix A state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The agreed transport, once set up.
    pub fn transport(&self) -> Option<Transport> {
        self.transport
    }

    /// The `Session` header's identifier.
    pub fn session_id(&self) -> String {
        format!("{:016X}", self.cfg.session_id)
    }

    /// When the session expires unless something refreshes it.
    pub fn timeout_at(&self) -> Option<u64> {
        (self.state != State::Init)
            .then(|| self.last_activity_ms.saturating_add(self.cfg.timeout_ms))
    }

    // Inputs.

    /// Evidence the client is alive other than a request (an RTCP receiver
    /// report, §12.37: "the server ... may use RTCP ... as indication").
    pub fn on_activity(&mut self, now_ms: u64) {
        self.last_activity_ms = self.last_activity_ms.max(now_ms);
    }

    /// Expires the session once [`Session::timeout_at`] has passed; true
    /// when it just did (the host was told to stop).
    pub fn handle_timeout(&mut self, now_ms: u64, host: &mut dyn Host) -> bool {
        match self.timeout_at() {
            Some(at) if now_ms >= at => {
                self.end(host);
                true
            }
            _ => false,
        }
    }

    /// The answer to bytes that did not parse (the caller then closes).
    pub fn refuse(err: &ParseError) -> Response {
        Response::new(err.status(), None).with("Server", SERVER)
    }

    /// Answers one request at `now_ms`.
    pub fn handle(&mut self, now_ms: u64, req: &Request, host: &mut dyn Host) -> Response {
        // §12.32: a Require naming anything is an option we do not
        // support, refused before the method acts.
        if let Some(opts) = req.header("Require") {
            return Response::new(551, Some(req.cseq))
                .with("Server", SERVER)
                .with("Unsupported", opts);
        }
        let mut r = match req.method {
            Method::Options => Response::new(200, Some(req.cseq)).with("Public", PUBLIC),
            Method::Describe => self.describe(req, host),
            Method::Setup => self.setup(now_ms, req, host),
            Method::Play => self.play(now_ms, req, host),
            Method::Pause => self.pause(now_ms, req, host),
            Method::Teardown => self.teardown(req, host),
            Method::GetParameter => self.get_parameter(now_ms, req),
            Method::Announce | Method::Record | Method::SetParameter | Method::Redirect => {
                Response::new(405, Some(req.cseq)).with("Allow", PUBLIC)
            }
            Method::Other(_) => Response::new(501, Some(req.cseq)),
        };
        r.headers.insert(0, ("Server".into(), SERVER.into()));
        r
    }

    fn describe(&mut self, req: &Request, host: &mut dyn Host) -> Response {
        let Some((path, track)) = split_url(&req.uri) else {
            return Response::new(400, Some(req.cseq));
        };
        if track {
            return Response::new(460, Some(req.cseq));
        }
        let Some(info) = host.lookup(path) else {
            return Response::new(404, Some(req.cseq));
        };
        let name = path.rsplit('/').next().unwrap_or(path);
        let body = sdp::describe(self.cfg.server, self.cfg.session_id, name, info.duration_ms);
        let base = format!("{}/", req.uri.trim_end_matches('/'));
        let mut r = Response::new(200, Some(req.cseq))
            .with("Content-Base", base)
            .with("Content-Type", "application/sdp");
        r.body = body.into_bytes();
        r
    }

    fn setup(&mut self, now_ms: u64, req: &Request, host: &mut dyn Host) -> Response {
        let cseq = Some(req.cseq);
        if let Err(r) = self.check_session(req, false) {
            return r;
        }
        let Some((path, track)) = split_url(&req.uri) else {
            return Response::new(400, cseq);
        };
        if !track {
            // The stream is set up at its control URL, not the
            // presentation's (§10.4, §C.1.1).
            return Response::new(459, cseq);
        }
        if self.state == State::Playing {
            // §10.4: a server may refuse to change transport while playing.
            return Response::new(455, cseq).with("Allow", "PLAY, PAUSE, TEARDOWN, GET_PARAMETER");
        }
        if self.path.as_deref().is_some_and(|p| p != path) {
            return Response::new(455, cseq).with("Allow", "PLAY, TEARDOWN, GET_PARAMETER");
        }
        let Some(info) = host.lookup(path) else {
            return Response::new(404, cseq);
        };
        let Some(header) = req.header("Transport") else {
            return Response::new(461, cseq);
        };
        let t = match transport::choose(header, self.cfg.client, self.udp) {
            Ok(t) => t,
            Err(e) => return Response::new(e.status(), cseq),
        };
        self.state = State::Ready;
        self.path = Some(path.to_string());
        self.duration_ms = info.duration_ms;
        self.transport = Some(t);
        self.last_activity_ms = now_ms;
        Response::new(200, cseq)
            .with("Transport", t.echo(self.cfg.server_ports, self.cfg.ssrc))
            .with("Session", self.session_header())
    }

    fn play(&mut self, now_ms: u64, req: &Request, host: &mut dyn Host) -> Response {
        let cseq = Some(req.cseq);
        if let Err(r) = self.check_session(req, true) {
            return r;
        }
        if let Err(r) = self.check_object(req) {
            return r;
        }
        self.last_activity_ms = now_ms;
        let range = match req.header("Range") {
            None => None,
            Some(v) => match parse_range(v) {
                Some(r) => Some(r),
                None => return Response::new(457, cseq).with("Session", self.session_header()),
            },
        };
        let start = range.and_then(|r| r.start_ms);
        if start.is_some_and(|s| s > self.duration_ms) {
            return Response::new(457, cseq).with("Session", self.session_header());
        }
        if self.state == State::Playing && start.is_none() {
            return Response::new(200, cseq).with("Session", self.session_header());
        }
        let from = start.unwrap_or(self.paused_at_ms);
        let (Some(path), Some(t)) = (self.path.clone(), self.transport) else {
            return Response::new(455, cseq);
        };
        let info = host.play(&path, from, t);
        self.state = State::Playing;
        let url = format!("{}/{}", req.uri.trim_end_matches('/'), sdp::TRACK);
        let url = if req.uri.ends_with(sdp::TRACK) {
            req.uri.clone()
        } else {
            url
        };
        Response::new(200, cseq)
            .with("Range", format_range(from, Some(self.duration_ms)))
            .with("Session", self.session_header())
            .with(
                "RTP-Info",
                format!("url={url};seq={};rtptime={}", info.seq, info.rtptime),
            )
    }

    fn pause(&mut self, now_ms: u64, req: &Request, host: &mut dyn Host) -> Response {
        let cseq = Some(req.cseq);
        if let Err(r) = self.check_session(req, true) {
            return r;
        }
        if let Err(r) = self.check_object(req) {
            return r;
        }
        self.last_activity_ms = now_ms;
        if self.state != State::Playing {
            // Appendix A: PAUSE is not a transition out of Ready.
            return Response::new(455, cseq)
                .with("Allow", "SETUP, PLAY, TEARDOWN, GET_PARAMETER")
                .with("Session", self.session_header());
        }
        self.paused_at_ms = host.pause().min(self.duration_ms);
        self.state = State::Ready;
        Response::new(200, cseq)
            .with("Range", format_range(self.paused_at_ms, None))
            .with("Session", self.session_header())
    }

    fn teardown(&mut self, req: &Request, host: &mut dyn Host) -> Response {
        if let Err(r) = self.check_session(req, true) {
            return r;
        }
        let id = self.session_id();
        self.end(host);
        Response::new(200, Some(req.cseq)).with("Session", id)
    }

    fn get_parameter(&mut self, now_ms: u64, req: &Request) -> Response {
        let cseq = Some(req.cseq);
        let with_session = req.header("Session").is_some();
        if with_session {
            if let Err(r) = self.check_session(req, true) {
                return r;
            }
            self.last_activity_ms = now_ms;
        }
        if !req.body.is_empty() {
            return Response::new(451, cseq);
        }
        let r = Response::new(200, cseq);
        if with_session {
            r.with("Session", self.session_header())
        } else {
            r
        }
    }

    // Helpers.

    fn end(&mut self, host: &mut dyn Host) {
        if self.state != State::Init {
            host.stop();
        }
        self.state = State::Init;
        self.path = None;
        self.transport = None;
        self.paused_at_ms = 0;
    }

    fn session_header(&self) -> String {
        format!(
            "{};timeout={}",
            self.session_id(),
            self.cfg.timeout_ms.div_ceil(1000)
        )
    }

    /// §12.37 / 454: a `Session` must name the live session; `required`
    /// when the method acts on one.
    fn check_session(&self, req: &Request, required: bool) -> Result<(), Response> {
        let cseq = Some(req.cseq);
        match req.header("Session") {
            None if required => Err(Response::new(454, cseq)),
            None if self.state != State::Init => {
                // A second session on this connection is not served.
                Err(Response::new(455, cseq).with("Allow", "PLAY, PAUSE, TEARDOWN, GET_PARAMETER"))
            }
            None => Ok(()),
            Some(v) => {
                let id = v.split(';').next().unwrap_or("").trim();
                if self.state == State::Init || !id.eq_ignore_ascii_case(&self.session_id()) {
                    Err(Response::new(454, cseq))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// PLAY and PAUSE name the presentation or its stream (one and the
    /// same here) of the session's object.
    fn check_object(&self, req: &Request) -> Result<(), Response> {
        match split_url(&req.uri) {
            Some((path, _)) if Some(path) == self.path.as_deref() => Ok(()),
            Some(_) => Err(Response::new(404, Some(req.cseq))),
            None => Err(Response::new(400, Some(req.cseq))),
        }
    }
}

/// The path of an `rtsp://host[:port]/path[/trackID=0]` URL and whether
/// it names the stream rather than the presentation.
pub fn split_url(uri: &str) -> Option<(&str, bool)> {
    let rest = uri
        .strip_prefix("rtsp://")
        .or_else(|| uri.strip_prefix("RTSP://"))?;
    let slash = rest.find('/')?;
    let path = rest[slash..].split('?').next().unwrap_or("");
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return None;
    }
    match path.strip_suffix(sdp::TRACK) {
        Some(p) => {
            let p = p.trim_end_matches('/');
            (!p.is_empty()).then_some((p, true))
        }
        None => Some((path, false)),
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
