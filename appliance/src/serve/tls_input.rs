//! What an HTTPS checkpoint carries of the client's input that no response
//! names yet (issue 14, pipelined requests): the requests HTTP read and
//! has not answered, written back by the session, then the decrypted bytes
//! it has not read. A pure function of the two, so that `serve::tls` only
//! asks; it knows neither TLS records nor HTTP parsing.

use std::collections::VecDeque;

use baton_tls::{PendingInput, MAX_PENDING_INPUT};

/// The pending input a sealed block carries, and whether some input could
/// not be carried (`unanswered` is `None`: HTTP could not write its queue
/// back; or everything is over [`MAX_PENDING_INPUT`]). When lost, nothing
/// is carried: a survivor ends the connection after the response in flight
/// and the client retries what it left unanswered.
pub fn pending_input(unanswered: Option<&[u8]>, unread: &VecDeque<u8>) -> (PendingInput, bool) {
    let Some(http) = unanswered else {
        return (PendingInput::default(), true);
    };
    let len = http.len() + unread.len();
    if len > MAX_PENDING_INPUT {
        return (PendingInput::default(), true);
    }
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(http);
    p.extend(unread.iter());
    (PendingInput(p), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_come_before_bytes_unread() {
        let unread: VecDeque<u8> = b"GET /c HT".iter().copied().collect();
        let (p, lost) = pending_input(Some(b"GET /b HTTP/1.1\r\n\r\n"), &unread);
        assert!(!lost);
        assert_eq!(p.0, b"GET /b HTTP/1.1\r\n\r\nGET /c HT");
        let (p, lost) = pending_input(Some(b""), &VecDeque::new());
        assert!(!lost && p.0.is_empty(), "nothing waits, nothing lost");
    }

    #[test]
    fn what_cannot_be_carried_is_lost_not_cut() {
        assert_eq!(
            pending_input(None, &VecDeque::new()),
            (PendingInput::default(), true)
        );
        let unread: VecDeque<u8> = std::iter::repeat_n(b'x', MAX_PENDING_INPUT).collect();
        assert!(
            !pending_input(Some(b""), &unread).1,
            "exactly the limit fits"
        );
        assert_eq!(
            pending_input(Some(b"G"), &unread),
            (PendingInput::default(), true),
            "one byte over"
        );
    }
}
