//! Data-connection addresses on the control channel: PORT and PASV's
//! `h1,h2,h3,h4,p1,p2` (RFC 959 §4.1.2, §4.2) and EPRT/EPSV's
//! `|af|addr|port|` (RFC 2428 §2-3), and the bounce rule of RFC 2577 §3.
//! Knows nothing of sessions or sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a PORT or EPRT argument is not an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// Not the command's syntax.
    #[error("malformed data address")]
    Malformed,
    /// EPRT with a network family other than 1 (IPv4) or 2 (IPv6).
    #[error("unsupported network family")]
    UnsupportedFamily,
}

/// Parses PORT's argument: six decimal bytes.
pub fn parse_port(arg: &str) -> Result<SocketAddr, AddrError> {
    let mut bytes = [0u8; 6];
    let mut n = 0;
    for part in arg.split(',') {
        if n == 6 {
            return Err(AddrError::Malformed);
        }
        let part = part.trim();
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddrError::Malformed);
        }
        bytes[n] = part.parse::<u8>().map_err(|_| AddrError::Malformed)?;
        n += 1;
    }
    if n != 6 {
        return Err(AddrError::Malformed);
    }
    let ip = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
    let port = u16::from_be_bytes([bytes[4], bytes[5]]);
    Ok(SocketAddr::new(IpAddr::V4(ip), port))
}

/// Parses EPRT's argument: a delimiter (any printable ASCII but digits),
/// the family (1 IPv4, 2 IPv6), the address and the port.
pub fn parse_eprt(arg: &str) -> Result<SocketAddr, AddrError> {
    let delim = arg.chars().next().ok_or(AddrError::Malformed)?;
    if !(delim.is_ascii_graphic()) || delim.is_ascii_digit() {
        return Err(AddrError::Malformed);
    }
    let fields: Vec<&str> = arg.split(delim).collect();
    // "|1|a|p|" splits into ["", "1", "a", "p", ""].
    if fields.len() != 5 || !fields[0].is_empty() || !fields[4].is_empty() {
        return Err(AddrError::Malformed);
    }
    let ip: IpAddr = match fields[1] {
        "1" => IpAddr::V4(
            fields[2]
                .parse::<Ipv4Addr>()
                .map_err(|_| AddrError::Malformed)?,
        ),
        "2" => IpAddr::V6(
            fields[2]
                .parse::<Ipv6Addr>()
                .map_err(|_| AddrError::Malformed)?,
        ),
        // RFC 2428 §2: an unsupported family is answered 522.
        _ => return Err(AddrError::UnsupportedFamily),
    };
    if fields[3].is_empty() || fields[3].len() > 5 || !fields[3].bytes().all(|b| b.is_ascii_digit())
    {
        return Err(AddrError::Malformed);
    }
    let port = fields[3].parse::<u16>().map_err(|_| AddrError::Malformed)?;
    Ok(SocketAddr::new(ip, port))
}

/// Why an active-mode address is refused (RFC 2577 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BounceError {
    /// The address is not the control connection's client: a bounce.
    #[error("data address is not the client's own")]
    ThirdParty,
    /// A privileged port or port 0: a bounce into a well-known service.
    #[error("data port below 1024")]
    PrivilegedPort,
}

/// Checks an active-mode address against the control connection's client.
/// IPv4-mapped IPv6 addresses compare as their IPv4 form.
pub fn check_active(target: SocketAddr, client: IpAddr) -> Result<(), BounceError> {
    if canonical(target.ip()) != canonical(client) {
        return Err(BounceError::ThirdParty);
    }
    if target.port() < 1024 {
        return Err(BounceError::PrivilegedPort);
    }
    Ok(())
}

/// The IPv4 form of an IPv4-mapped IPv6 address, else the address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// PASV's reply text: `Entering Passive Mode (h1,h2,h3,h4,p1,p2).`
pub fn pasv_text(ip: Ipv4Addr, port: u16) -> String {
    let o = ip.octets();
    format!(
        "Entering Passive Mode ({},{},{},{},{},{}).",
        o[0],
        o[1],
        o[2],
        o[3],
        port >> 8,
        port & 0xff
    )
}

/// EPSV's reply text: `Entering Extended Passive Mode (|||port|)`.
pub fn epsv_text(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}
