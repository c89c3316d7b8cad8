//! One FTP command line parsed (RFC 959 §4-5, RFC 2428 EPRT/EPSV, RFC 3659
//! SIZE/MDTM/REST/MLSD). The line arrives without its CRLF; verbs are case
//! insensitive. Knows nothing of session state: whether a command is allowed
//! now is the session's question.

use std::net::SocketAddr;

use crate::addr::{parse_eprt, parse_port, AddrError};

/// A representation type (RFC 959 §3.1.1); only the two a cache needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    /// `TYPE A` (ASCII, non-print).
    Ascii,
    /// `TYPE I` (image, binary).
    Image,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name`.
    User(String),
    /// `PASS password` (the password is not kept).
    Pass,
    /// `SYST`.
    Syst,
    /// `FEAT`.
    Feat,
    /// `OPTS UTF8 ON` (or any OPTS; the argument, upper-cased).
    Opts(String),
    /// `TYPE A` / `TYPE I` (`TYPE L 8` is image too).
    Type(TransferType),
    /// `MODE S`; other modes are refused by the parser (504).
    ModeStream,
    /// `STRU F`; other structures are refused by the parser (504).
    StruFile,
    /// `PWD` (or `XPWD`).
    Pwd,
    /// `CWD path`.
    Cwd(String),
    /// `CDUP` (or `XCUP`).
    Cdup,
    /// `SIZE path`.
    Size(String),
    /// `MDTM path`.
    Mdtm(String),
    /// `REST offset` (stream mode restart marker, RFC 3659 §5).
    Rest(u64),
    /// `RETR path`.
    Retr(String),
    /// `LIST [path]`; options like `-la` are ignored.
    List,
    /// `NLST [path]`.
    Nlst,
    /// `MLSD [path]`.
    Mlsd,
    /// `PASV`.
    Pasv,
    /// `EPSV`, `EPSV 1`, `EPSV 2` or `EPSV ALL`.
    Epsv,
    /// `PORT h1,h2,h3,h4,p1,p2`.
    Port(SocketAddr),
    /// `EPRT |af|addr|port|`.
    Eprt(SocketAddr),
    /// `ABOR`.
    Abor,
    /// `NOOP`.
    Noop,
    /// `QUIT`.
    Quit,
    /// A verb a read-only server does not implement (STOR, DELE, ...): 502.
    NotImplemented(String),
}

/// Why a line is not a command the server can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Empty line or a verb that is not a verb: 500.
    #[error("syntax error, command unrecognized")]
    Unrecognized,
    /// Known verb, bad or missing argument: 501.
    #[error("syntax error in parameters or arguments")]
    BadArgument,
    /// Known verb, parameter value not implemented (MODE B, STRU R,
    /// TYPE E, EPSV for an unknown family): 504.
    #[error("command not implemented for that parameter")]
    ParameterNotImplemented,
    /// Not UTF-8 / contains NUL or control characters: 500.
    #[error("command line is not text")]
    NotText,
}

/// Verbs known to RFC 959 and its extensions that a read-only anonymous
/// server answers 502 to (so that clients learn "not implemented" rather
/// than "garbled").
const NOT_IMPLEMENTED: &[&str] = &[
    "ACCT", "SMNT", "REIN", "STOR", "STOU", "APPE", "ALLO", "RNFR", "RNTO", "DELE", "RMD", "MKD",
    "XMKD", "XRMD", "SITE", "STAT", "HELP", "MLST", "LPRT", "LPSV", "AUTH", "PBSZ", "PROT", "CCC",
    "ADAT", "MIC", "CONF", "ENC", "LANG", "HOST",
];

/// Parses one command line (without CRLF).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::NotText)?;
    // Telnet IAC sequences (RFC 959 §4.1.3, sent before ABOR by some
    // clients) and other control bytes are not part of a command.
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ParseError::NotText);
    }
    let (verb, arg) = match line.split_once(' ') {
        Some((v, a)) => (v, a),
        None => (line, ""),
    };
    if verb.is_empty() || verb.len() > 4 || !verb.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ParseError::Unrecognized);
    }
    let verb = verb.to_ascii_uppercase();
    let arg_required = |a: &str| {
        if a.is_empty() {
            Err(ParseError::BadArgument)
        } else {
            Ok(a.to_string())
        }
    };
    let no_arg = |c: Command| {
        if arg.trim().is_empty() {
            Ok(c)
        } else {
            Err(ParseError::BadArgument)
        }
    };
    match verb.as_str() {
        "USER" => arg_required(arg).map(Command::User),
        "PASS" => Ok(Command::Pass),
        "SYST" => no_arg(Command::Syst),
        "FEAT" => no_arg(Command::Feat),
        "OPTS" => arg_required(arg).map(|a| Command::Opts(a.to_ascii_uppercase())),
        "TYPE" => parse_type(arg),
        "MODE" => match arg.trim().to_ascii_uppercase().as_str() {
            "S" => Ok(Command::ModeStream),
            "B" | "C" | "Z" => Err(ParseError::ParameterNotImplemented),
            _ => Err(ParseError::BadArgument),
        },
        "STRU" => match arg.trim().to_ascii_uppercase().as_str() {
            "F" => Ok(Command::StruFile),
            "R" | "P" => Err(ParseError::ParameterNotImplemented),
            _ => Err(ParseError::BadArgument),
        },
        "PWD" | "XPWD" => no_arg(Command::Pwd),
        "CWD" | "XCWD" => arg_required(arg).map(Command::Cwd),
        "CDUP" | "XCUP" => no_arg(Command::Cdup),
        "SIZE" => arg_required(arg).map(Command::Size),
        "MDTM" => arg_required(arg).map(Command::Mdtm),
        "REST" => arg
            .trim()
            .parse::<u64>()
            .map(Command::Rest)
            .map_err(|_| ParseError::BadArgument),
        "RETR" => arg_required(arg).map(Command::Retr),
        "LIST" => Ok(Command::List),
        "NLST" => Ok(Command::Nlst),
        "MLSD" => Ok(Command::Mlsd),
        "PASV" => no_arg(Command::Pasv),
        "EPSV" => match arg.trim().to_ascii_uppercase().as_str() {
            "" | "1" | "2" | "ALL" => Ok(Command::Epsv),
            _ => Err(ParseError::ParameterNotImplemented),
        },
        "PORT" => parse_port(arg.trim())
            .map(Command::Port)
            .map_err(addr_error),
        "EPRT" => parse_eprt(arg.trim())
            .map(Command::Eprt)
            .map_err(addr_error),
        "ABOR" => no_arg(Command::Abor),
        "NOOP" => no_arg(Command::Noop),
        "QUIT" => no_arg(Command::Quit),
        v if NOT_IMPLEMENTED.contains(&v) => Ok(Command::NotImplemented(v.to_string())),
        _ => Err(ParseError::Unrecognized),
    }
}

fn addr_error(e: AddrError) -> ParseError {
    match e {
        AddrError::Malformed => ParseError::BadArgument,
        AddrError::UnsupportedFamily => ParseError::ParameterNotImplemented,
    }
}

fn parse_type(arg: &str) -> Result<Command, ParseError> {
    let mut parts = arg.split_ascii_whitespace();
    let code = parts
        .next()
        .ok_or(ParseError::BadArgument)?
        .to_ascii_uppercase();
    let param = parts.next().map(|p| p.to_ascii_uppercase());
    if parts.next().is_some() {
        return Err(ParseError::BadArgument);
    }
    match (code.as_str(), param.as_deref()) {
        ("A", None | Some("N")) => Ok(Command::Type(TransferType::Ascii)),
        ("I", None) | ("L", Some("8")) => Ok(Command::Type(TransferType::Image)),
        ("A" | "E", Some(_)) | ("E", None) | ("L", _) => Err(ParseError::ParameterNotImplemented),
        _ => Err(ParseError::BadArgument),
    }
}
