//! Requests pipelined behind a response on plain HTTP, across a kill: TCP
//! acknowledged them, so the client never sends them again and the
//! survivor must answer them from the dead box's checkpoint (its record's
//! pending requests, docs/TAKEOVER.md "Pipelined requests"). Real client:
//! Python's sockets (curl does not pipeline), run in the lab's client
//! namespace. Needs root; serialized with the other lab tests.
mod common;

use common::*;

/// Three GETs in one write on a keep-alive connection; box 1 is killed
/// while the first answer (50 MB) is going out with the two others read
/// and queued behind it: box 2 finishes the first and answers the two
/// others on the same connection, complete, byte-exact and in order, no
/// RST.
#[test]
fn lab_http_pipelined_requests_survive_a_kill() {
    let g = LabGuard::up("btpl", &["--boxes", "2"]);
    let rst = RstCapture::start(&g);
    let (answers, status) = pipelined_across_a_kill(&g, None, &["/50M.bin", "/1M.bin", "/1K.bin"]);
    let want: Vec<String> = [("50M.bin", 50 << 20), ("1M.bin", 1 << 20), ("1K.bin", 1024)]
        .iter()
        .map(|(name, len)| format!("200 {} {len} plain", g.listed_sha(name)))
        .collect();
    assert_eq!(
        answers,
        want,
        "pipelined answers across the kill (client: {})",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(status.status.success(), "the client failed");
    rst.assert_none_with_fins(1);
    let m = box_metrics(&g, 2);
    assert_eq!(metric_value(&m, "baton_http_resumed_total"), 1);
    assert_eq!(
        metric_value(&m, "baton_http_requests_total"),
        2,
        "box 2 answered the two requests behind the resumed one"
    );
}

/// A request the record cannot carry (a refused one, no Host) pipelined
/// behind a 50 MB answer, box 1 killed mid-answer: box 2 finishes the
/// answer, then closes the connection (FIN) rather than wait for a request
/// that is gone: the client has its body whole and a close it can retry
/// after, no RST.
#[test]
fn lab_http_pipelined_input_the_record_cannot_carry_ends_the_connection_after_the_answer() {
    let g = LabGuard::up("btpm", &["--boxes", "2"]);
    let rst = RstCapture::start(&g);
    let (answers, status) = pipelined_across_a_kill(&g, None, &["/50M.bin", "!/1K.bin"]);
    let first = format!("200 {} {} plain", g.listed_sha("50M.bin"), 50 << 20);
    assert_eq!(
        answers,
        [first, "closed".to_string()],
        "client: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    rst.assert_none_with_fins(1);
    let m = box_metrics(&g, 2);
    assert_eq!(metric_value(&m, "baton_http_resumed_total"), 1);
    assert_eq!(
        metric_value(&m, "baton_http_idle_timeouts_total"),
        0,
        "closed right after the answer, not by the idle timeout"
    );
}
