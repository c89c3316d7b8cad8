//! The request-head parser's unit tests, each quoting the RFC sentence it
//! holds the parser to.

use super::*;

fn limits() -> Limits {
    Limits {
        max_request_line: 64,
        max_header_bytes: 128,
        idle_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(1),
        max_upload_bytes: 1000,
    }
}

fn ok(s: &str) -> Request {
    match parse(s.as_bytes(), &limits()) {
        Ok(Parsed::Complete(r, n)) => {
            assert_eq!(n, s.len());
            r
        }
        other => panic!("{s:?}: {other:?}"),
    }
}

#[test]
fn http11_get_is_persistent_unless_close() {
    let r = ok("GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        (r.method, r.minor, r.url.as_str(), r.persistent),
        (Method::Get, 1, "/a?b", true)
    );
    let r = ok("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(!r.persistent);
}

#[test]
fn http10_persists_only_with_keep_alive_and_needs_no_host() {
    assert!(!ok("GET /a HTTP/1.0\r\n\r\n").persistent);
    assert!(ok("HEAD /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").persistent);
}

#[test]
fn absolute_form_target_is_reduced_to_its_path() {
    assert_eq!(
        ok("GET http://h:80/x/y HTTP/1.1\r\nHost: h\r\n\r\n").url,
        "/x/y"
    );
    assert_eq!(ok("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n").url, "/");
}

#[test]
fn http11_without_host_or_with_two_is_400() {
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\n\r\n", &limits()),
        Err(ParseError::Malformed)
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &limits()),
        Err(ParseError::Malformed)
    );
}

#[test]
fn long_request_line_is_414_even_before_it_ends() {
    let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
    assert_eq!(
        parse(long.as_bytes(), &limits()),
        Err(ParseError::LineTooLong)
    );
    let partial = format!("GET /{}", "a".repeat(100));
    assert_eq!(
        parse(partial.as_bytes(), &limits()),
        Err(ParseError::LineTooLong)
    );
    assert_eq!(ParseError::LineTooLong.status(), 414);
}

#[test]
fn large_header_section_is_431_even_before_it_ends() {
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n",
        "b".repeat(200)
    );
    assert_eq!(
        parse(big.as_bytes(), &limits()),
        Err(ParseError::HeadersTooLarge)
    );
    let many: String = (0..120).map(|i| format!("X{i}: 1\r\n")).collect();
    let l = Limits {
        max_header_bytes: 1 << 20,
        ..limits()
    };
    let req = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(parse(req.as_bytes(), &l), Err(ParseError::HeadersTooLarge));
}

#[test]
fn garbage_and_bad_lengths_are_400() {
    for bad in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        assert_eq!(parse(bad, &limits()), Err(ParseError::Malformed), "{bad:?}");
    }
}

#[test]
fn content_length_is_digits_only() {
    // RFC 9110 §8.6: Content-Length = 1*DIGIT. Rust's u64 parser
    // takes "+5"; another hop may read it otherwise (smuggling).
    for v in [
        "+5",
        "-5",
        "5,5",
        "5, 5",
        "0x5",
        "5a",
        "",
        "1 2",
        "99999999999999999999",
    ] {
        let req = format!("POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: {v}\r\n\r\n");
        assert_eq!(
            parse(req.as_bytes(), &limits()),
            Err(ParseError::Malformed),
            "{v:?}"
        );
    }
    assert_eq!(
        ok("POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 007\r\n\r\n").body,
        RequestBody::Length(7)
    );
    let same = ok("POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(
        same.body,
        RequestBody::Length(2),
        "identical duplicates agree"
    );
}

fn te(codings: &[&str]) -> Result<Parsed, ParseError> {
    let lines: String = codings
        .iter()
        .map(|c| format!("Transfer-Encoding: {c}\r\n"))
        .collect();
    let req = format!("POST /f HTTP/1.1\r\nHost: x\r\n{lines}\r\n");
    parse(req.as_bytes(), &limits())
}

#[test]
fn an_unknown_transfer_coding_is_501() {
    // RFC 9112 §6.1: a coding the server does not understand; every
    // coding but chunked is one here, the registered ones too (unless
    // it is the last one: then §6.3's 400 below takes precedence).
    for c in [
        &["foo"][..],
        &["gzip, chunked"],
        &["x-foo;q=1, chunked"],
        &["gzip", "chunked"],
        &["chunked, foo"],
    ] {
        assert_eq!(te(c), Err(ParseError::UnknownCoding), "{c:?}");
    }
    assert_eq!(ParseError::UnknownCoding.status(), 501);
    let get = b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n";
    assert_eq!(parse(get, &limits()), Err(ParseError::UnknownCoding));
}

#[test]
fn a_body_whose_length_cannot_be_known_is_400() {
    // RFC 9112 §6.3 rule 4: chunked must be the final coding (a MUST,
    // over §6.1's SHOULD 501 for a registered coding); §7: and applied
    // once. An empty list names no coding at all.
    for c in [
        &["gzip"][..],
        &["chunked, gzip"],
        &["chunked", "gzip"],
        &["chunked, chunked"],
        &["chunked", "chunked"],
        &[""],
        &[" , "],
        &["chun ked"],
        &["chunked\""],
    ] {
        assert_eq!(te(c), Err(ParseError::Malformed), "{c:?}");
    }
    for c in [
        &["chunked"][..],
        &["Chunked"],
        &[" chunked , "],
        &["", "chunked"],
    ] {
        assert!(
            matches!(
                te(c),
                Ok(Parsed::Complete(
                    Request {
                        body: RequestBody::Unframed,
                        persistent: false,
                        ..
                    },
                    _
                ))
            ),
            "{c:?}: {:?}",
            te(c)
        );
    }
}

#[test]
fn transfer_encoding_with_content_length_is_refused() {
    // RFC 9112 §6.3 rule 3: a request with both may be an attempt at
    // smuggling; the server MAY refuse it, and does, in either order.
    for req in [
        &b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            [..],
        b"POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
        b"GET /f HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
    ] {
        assert_eq!(
            parse(req, &limits()),
            Err(ParseError::Malformed),
            "{:?}",
            String::from_utf8_lossy(req)
        );
    }
}

#[test]
fn obsolete_line_folding_and_space_before_the_colon_are_400() {
    // RFC 9112 §5.2: obs-fold is refused in a request (400), and §5.1:
    // whitespace between a field name and its colon MUST be 400.
    // httparse refuses both; these tests keep it so.
    for req in [
        &b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\t2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n",
    ] {
        assert_eq!(
            parse(req, &limits()),
            Err(ParseError::Malformed),
            "{:?}",
            String::from_utf8_lossy(req)
        );
    }
}

fn status_of(req: &[u8]) -> Result<u16, u16> {
    match parse(req, &limits()) {
        Ok(Parsed::Complete(r, _)) => Ok(r.minor.into()),
        Ok(Parsed::Partial) => Ok(0),
        Err(e) => Err(e.status()),
    }
}

#[test]
fn a_bare_lf_line_end_is_400() {
    // RFC 9112 §2.2: "a recipient MAY recognize a single LF as a line
    // terminator". This one does not: a hop that splits only at CRLF
    // would read `X: 1\nTransfer-Encoding: chunked` as one field.
    for req in [
        &b"GET / HTTP/1.1\nHost: x\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: 1\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\nX",
    ] {
        assert_eq!(
            parse(req, &limits()),
            Err(ParseError::Malformed),
            "{:?}",
            String::from_utf8_lossy(req)
        );
    }
    // A LF in the body after a CRLF head is the body's business.
    let r = parse(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n\n\n",
        &limits(),
    );
    assert!(matches!(r, Ok(Parsed::Complete(_, 47))), "{r:?}");
}

#[test]
fn a_bare_cr_is_400() {
    // RFC 9112 §2.2: "A recipient of such a bare CR MUST consider that
    // element to be invalid or replace each bare CR with SP".
    for req in [
        &b"GET /\r HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET / HTTP/1.1\rHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\r\n",
    ] {
        assert_eq!(
            status_of(req),
            Err(400),
            "{:?}",
            String::from_utf8_lossy(req)
        );
    }
}

#[test]
fn other_major_versions_are_505_and_later_minors_are_read_as_1_1() {
    // RFC 9110 §15.6.6: 505 "the server does not support, or refuses
    // to support, the major version of HTTP that was used".
    for req in [
        &b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"[..],
        b"GET / HTTP/0.9\r\n\r\n",
        b"GET / HTTP/3.1\r\nHost: x\r\n\r\n",
    ] {
        assert_eq!(
            status_of(req),
            Err(505),
            "{:?}",
            String::from_utf8_lossy(req)
        );
    }
    // RFC 9110 §2.5: a higher minor version "SHOULD [be processed] as
    // if it were in the highest minor version within that major
    // version to which the recipient is conformant".
    let r = ok("GET /v HTTP/1.7\r\nHost: x\r\n\r\n");
    assert_eq!((r.minor, r.url.as_str(), r.persistent), (1, "/v", true));
    // RFC 9112 §2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT, and
    // HTTP-name is case-sensitive; HTTP/0.9's versionless line is not
    // HTTP/1.x either.
    for req in [
        &b"GET /\r\n\r\n"[..],
        b"GET / HTTP/1.10\r\nHost: x\r\n\r\n",
        b"GET / http/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/a.1\r\nHost: x\r\n\r\n",
        b"GET / HTTPS/1.1\r\nHost: x\r\n\r\n",
        // The version is what follows the second space; a 1.x after
        // another version is not read as the line's version.
        b"GET / HTTP/2.0 HTTP/1.2\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.2 HTTP/1.2\r\nHost: x\r\n\r\n",
    ] {
        assert_eq!(
            status_of(req),
            Err(400),
            "{:?}",
            String::from_utf8_lossy(req)
        );
    }
    // Still arriving: not judged yet.
    assert_eq!(status_of(b"GET / HTTP/2"), Ok(0));
    assert_eq!(ParseError::VersionNotSupported.status(), 505);
}

#[test]
fn an_invalid_host_value_is_400() {
    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request)
    // status code to any request message that contains [...] a Host
    // header field with an invalid field value."
    for host in ["a b", "a/b", "a@b", "a\"b", "a\\b", "a?b", "a#b"] {
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(status_of(req.as_bytes()), Err(400), "{host:?}");
    }
    for host in [
        "",
        "h",
        "h.example:8080",
        "198.18.0.11",
        "[2001:2::11]:80",
        "xn--d-1ga.example",
    ] {
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(status_of(req.as_bytes()), Ok(1), "{host:?}");
    }
}

#[test]
fn smuggling_shapes_are_refused() {
    // RFC 9112 §6.3 rule 3: "If a message is received with both a
    // Transfer-Encoding and a Content-Length header field, the
    // Transfer-Encoding overrides the Content-Length. Such a message
    // might indicate an attempt to perform request smuggling [...] A
    // server MAY reject a request that contains both [...] and ought
    // to handle such a message by [...] closing the connection". The
    // obfuscated Transfer-Encodings of TE.TE attacks: each hop must
    // see the same framing, so each is 400 or 501, never a body
    // framed by Content-Length.
    let cl = "Content-Length: 6\r\n";
    for te in [
        "Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding : chunked\r\n",
        "Transfer-Encoding:\tchunked\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
        "Transfer-Encoding:\x0bchunked\r\n",
        "Transfer-Encoding: \"chunked\"\r\n",
        "Transfer-Encoding: chunked, identity\r\n",
        "Transfer-Encoding:\r\n chunked\r\n",
        "X: y\nTransfer-Encoding: chunked\r\n",
        "TRANSFER-ENCODING: CHUNKED\r\n",
    ] {
        for order in [format!("{cl}{te}"), format!("{te}{cl}")] {
            let req = format!("POST / HTTP/1.1\r\nHost: x\r\n{order}\r\n0\r\n\r\n");
            let s = status_of(req.as_bytes());
            assert!(matches!(s, Err(400 | 501)), "{req:?}: {s:?}");
        }
    }
    // Content-Length with a sign, inner spaces, or two values.
    for v in [
        "-1",
        "+6",
        "6 6",
        "6,6",
        "6\r\nContent-Length: 7",
        "0x6",
        "6.0",
    ] {
        let req = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {v}\r\n\r\n");
        assert_eq!(status_of(req.as_bytes()), Err(400), "{v:?}");
    }
}

#[test]
fn limits_hold_at_their_exact_size() {
    // 64 bytes of request line pass, 65 are 414 (RFC 9110 §15.5.15).
    let line = |n: usize| format!("GET /{} HTTP/1.1", "a".repeat(n - 14));
    assert_eq!(line(64).len(), 64);
    assert!(matches!(
        parse(
            format!("{}\r\nHost: x\r\n\r\n", line(64)).as_bytes(),
            &limits()
        ),
        Ok(Parsed::Complete(..))
    ));
    assert_eq!(
        parse(
            format!("{}\r\nHost: x\r\n\r\n", line(65)).as_bytes(),
            &limits()
        ),
        Err(ParseError::LineTooLong)
    );
    // 128 bytes of header section (after the request line, with the
    // final empty line) pass, 129 are 431 (RFC 6585 §5).
    let head = |n: usize| {
        let filler = n - "Host: x\r\nX: \r\n\r\n".len();
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "b".repeat(filler)
        )
    };
    assert!(matches!(
        parse(head(128).as_bytes(), &limits()),
        Ok(Parsed::Complete(..))
    ));
    assert_eq!(
        parse(head(129).as_bytes(), &limits()),
        Err(ParseError::HeadersTooLarge)
    );
    assert_eq!(ParseError::HeadersTooLarge.status(), 431);
}

#[test]
fn partial_head_asks_for_more() {
    assert_eq!(parse(b"GET / HT", &limits()), Ok(Parsed::Partial));
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost:", &limits()),
        Ok(Parsed::Partial)
    );
}

#[test]
fn request_bodies_are_framed_and_chunked_ones_close() {
    let r = ok("POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(
        (r.method, r.body, r.persistent),
        (Method::Post, RequestBody::Length(5), true)
    );
    let r = ok("POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!((r.body, r.persistent), (RequestBody::Unframed, false));
    let r = ok("PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Type: text/plain\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(
        (r.method, r.content_type.as_deref(), r.expect_continue),
        (Method::Put, Some("text/plain"), true)
    );
    assert_eq!(
        ok("DELETE /f HTTP/1.1\r\nHost: x\r\n\r\n").method,
        Method::Other
    );
}

#[test]
fn conditional_and_range_headers_are_kept() {
    let r = ok("GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nIf-None-Match: \"a\"\r\nIf-None-Match: \"b\"\r\n\r\n");
    assert_eq!(r.range.as_deref(), Some("bytes=0-1"));
    assert_eq!(r.if_none_match.as_deref(), Some("\"a\", \"b\""));
}

#[test]
fn two_range_lines_are_kept_as_several_ranges() {
    // RFC 9110 §5.3: "A sender MUST NOT generate multiple field lines with
    // the same name in a message [...] unless that field's definition
    // allows multiple field line values to be recombined as a
    // comma-separated list"; Range's does not (§14.2), and a server may
    // ignore a Range it cannot use: the whole object is sent.
    let r = ok("GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nRange: bytes=5-9\r\n\r\n");
    assert_eq!(r.range.as_deref(), Some("bytes=0-1, bytes=5-9"));
}

#[test]
fn a_target_with_a_fragment_or_non_ascii_bytes_is_400() {
    // RFC 9112 §3.2.1: origin-form = absolute-path [ "?" query ], built
    // from RFC 3986's characters, which are ASCII (§2); "#" starts a
    // fragment, which no request-target form of RFC 9112 §3.2 has.
    for req in [
        &b"GET /1K.bin#x HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET http://h/a#b HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /caf\u{e9} HTTP/1.1\r\nHost: x\r\n\r\n".as_bytes(),
        b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        assert_eq!(
            status_of(req),
            Err(400),
            "{:?}",
            String::from_utf8_lossy(req)
        );
    }
    assert_eq!(
        ok("GET /caf%C3%A9?q=%23 HTTP/1.1\r\nHost: x\r\n\r\n").url,
        "/caf%C3%A9?q=%23"
    );
}

#[test]
fn framing_fields_spelled_with_underscores_are_400() {
    // RFC 9112 §11.2: "request smuggling [...] exploits differences in
    // protocol parsing among various recipients"; a hop that reads
    // `Content_Length` as Content-Length (CGI maps `-` to `_`) would frame
    // the request otherwise than this box, which ignores the name.
    for field in [
        "Content_Length: 5",
        "transfer_encoding: chunked",
        "CONTENT_LENGTH: 0",
    ] {
        let req = format!("POST / HTTP/1.1\r\nHost: x\r\n{field}\r\n\r\n");
        assert_eq!(status_of(req.as_bytes()), Err(400), "{field}");
    }
    assert_eq!(
        status_of(b"GET / HTTP/1.1\r\nHost: x\r\nX_Other: 1\r\n\r\n"),
        Ok(1)
    );
}
