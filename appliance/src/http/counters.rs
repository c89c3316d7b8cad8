//! The HTTP counters of one worker, declared once: [`counters!`] makes the
//! atomic struct the sessions bump, its plain snapshot, the sum over
//! workers, and the list of exported metrics (name, help, label, value)
//! the admin API's Prometheus output prints. A counter's doc line is its
//! metric's help text.
//!
//! This module knows nothing of sessions or of the admin API's formats.

use std::sync::atomic::{AtomicU64, Ordering};

/// One exported counter of a snapshot (see [`HttpStats::metrics`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMetric {
    /// Prometheus metric name.
    pub name: &'static str,
    /// Help text (the counter's doc).
    pub help: String,
    /// A label that tells counters of one metric apart.
    pub label: Option<(&'static str, &'static str)>,
    /// The value.
    pub value: u64,
}

/// Joins a counter's doc lines into one help line.
fn help_text(lines: &[&str]) -> String {
    lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
}

/// Declares the counters: each is doc lines, a field name, and optionally
/// `=> "metric_name"` (exported) with `{ "label" = "value" }`.
macro_rules! counters {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident $(=> $metric:literal $({ $lk:literal = $lv:literal })?)?
    ),* $(,)?) => {
        /// Per-worker HTTP counters (for the admin API and Prometheus): one
        /// worker writes them, so the atomics are never contended.
        #[derive(Debug, Default)]
        pub struct HttpCounters {
            $( $(#[doc = $doc])+ pub(crate) $name: AtomicU64, )*
        }

        /// A snapshot of [`HttpCounters`].
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct HttpStats {
            $( $(#[doc = $doc])+ pub $name: u64, )*
        }

        impl HttpCounters {
            /// The counters now.
            pub fn snapshot(&self) -> HttpStats {
                HttpStats { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }

        impl HttpStats {
            /// Adds another worker's counters (the box total is the sum).
            pub fn add(&mut self, o: &HttpStats) {
                $( self.$name += o.$name; )*
            }

            /// The exported counters, in declaration order.
            pub fn metrics(&self) -> Vec<HttpMetric> {
                let mut out = Vec::new();
                $(
                    let help: &[&str] = &[$($doc),+];
                    $(
                        out.push(HttpMetric {
                            name: $metric,
                            help: help_text(help),
                            label: None $(.or(Some(($lk, $lv))))?,
                            value: self.$name,
                        });
                    )?
                    let _ = help;
                )*
                out
            }
        }
    };
}

counters! {
    /// Request heads parsed.
    requests => "baton_http_requests_total",
    /// Response body bytes handed to TCP.
    body_bytes => "baton_http_body_bytes_total",
    /// Uploads (POST, PUT) begun.
    uploads => "baton_http_uploads_total",
    /// Uploads continued here after a takeover.
    uploads_resumed => "baton_http_uploads_resumed_total",
    /// Responses continued here after a takeover.
    resumed => "baton_http_resumed_total",
    /// Taken-over connections HTTP could not continue (object changed or gone, upload lost).
    not_resumable => "baton_http_not_resumable_total",
    /// Idle keep-alive connections parked: kept as their checkpoint alone
    /// (`checkpoint.park_idle_after_ms`).
    parked => "baton_http_parked_total",
    /// Parked connections rebuilt from their checkpoint (their client sent,
    /// or their idle limit came).
    unparked => "baton_http_unparked_total",
    /// Parked connections their client reset.
    parked_reset => "baton_http_parked_reset_total",
    /// Responses cut short (object failed mid-body).
    aborted => "baton_http_aborted_total",
    /// Connections refused at the connection cap (503).
    refused_connections => "baton_http_refused_connections_total",
    /// Responses by status class.
    responses_2xx => "baton_http_responses_total" { "class" = "2xx" },
    /// Responses by status class.
    responses_3xx => "baton_http_responses_total" { "class" = "3xx" },
    /// Responses by status class.
    responses_4xx => "baton_http_responses_total" { "class" = "4xx" },
    /// Responses by status class.
    responses_5xx => "baton_http_responses_total" { "class" = "5xx" },
    /// Requests refused for their head, by status (400 malformed or smuggling-shaped, 405 method,
    /// 414 request line, 431 header section, 501 transfer coding, 505 version).
    bad_request => "baton_http_refused_total" { "status" = "400" },
    /// Requests refused for their head, by status (400 malformed or smuggling-shaped, 405 method,
    /// 414 request line, 431 header section, 501 transfer coding, 505 version).
    method_not_allowed => "baton_http_refused_total" { "status" = "405" },
    /// Requests refused for their head, by status (400 malformed or smuggling-shaped, 405 method,
    /// 414 request line, 431 header section, 501 transfer coding, 505 version).
    uri_too_long => "baton_http_refused_total" { "status" = "414" },
    /// Requests refused for their head, by status (400 malformed or smuggling-shaped, 405 method,
    /// 414 request line, 431 header section, 501 transfer coding, 505 version).
    headers_too_large => "baton_http_refused_total" { "status" = "431" },
    /// Requests refused for their head, by status (400 malformed or smuggling-shaped, 405 method,
    /// 414 request line, 431 header section, 501 transfer coding, 505 version).
    not_implemented => "baton_http_refused_total" { "status" = "501" },
    /// Requests refused for their head, by status (400 malformed or smuggling-shaped, 405 method,
    /// 414 request line, 431 header section, 501 transfer coding, 505 version).
    version_not_supported => "baton_http_refused_total" { "status" = "505" },
    /// Request heads (or upload bodies) not complete in time: 408, then closed
    /// (`limits.request_timeout_ms`, `limits.idle_timeout_ms` for a stalled body).
    request_timeouts => "baton_http_request_timeouts_total",
    /// Idle connections closed (`limits.idle_timeout_ms`).
    idle_timeouts => "baton_http_idle_timeouts_total",
    /// TLS handshakes completed (HTTPS connections established).
    tls_handshakes => "baton_tls_handshakes_total",
    /// Of those, abbreviated: the client resumed a session from a ticket
    /// (sealed by any box of the cluster).
    tls_sessions_resumed => "baton_tls_sessions_resumed_total",
    /// TLS handshakes that failed (bad ClientHello, no common version or suite).
    tls_handshake_failures => "baton_tls_handshake_failures_total",
    /// TLS records sealed and sent after the handshake (Baton's record layer).
    tls_records_out => "baton_tls_records_total" { "direction" = "out" },
    /// TLS records opened after the handshake (Baton's record layer).
    tls_records_in => "baton_tls_records_total" { "direction" = "in" },
    /// Fatal TLS alerts sent (bad record MAC, record overflow, unexpected message, handshake failure).
    tls_alerts_sent => "baton_tls_alerts_total" { "direction" = "sent" },
    /// Fatal TLS alerts received from clients.
    tls_alerts_received => "baton_tls_alerts_total" { "direction" = "received" },
    /// close_notify alerts sent.
    tls_close_notify_sent => "baton_tls_close_notify_total" { "direction" = "sent" },
    /// close_notify alerts received.
    tls_close_notify_received => "baton_tls_close_notify_total" { "direction" = "received" },
    /// TLS 1.3 KeyUpdates received from clients.
    tls_key_updates => "baton_tls_key_updates_total",
    /// HTTPS connections taken over and continued here from their checkpoint's TLS block.
    tls_resumed => "baton_tls_resumed_total",
    /// HTTPS connections taken over but reset: no TLS block (handshake), a block that
    /// does not open with the cluster key, or a client position outside a body.
    tls_not_resumed => "baton_tls_not_resumed_total",
    /// FTP control connections accepted (issue 17).
    ftp_sessions => "baton_ftp_sessions_total",
    /// FTP command lines processed.
    ftp_commands => "baton_ftp_commands_total",
    /// FTP command lines refused, by cause: over `ftp.max_command_bytes` (500).
    ftp_overlong => "baton_ftp_refused_total" { "cause" = "overlong" },
    /// FTP command lines refused, by cause: PORT/EPRT to another address (bounce, RFC 2577).
    ftp_bounces => "baton_ftp_refused_total" { "cause" = "bounce" },
    /// FTP command lines refused, by cause: unknown, unimplemented or malformed (500/501/502/504).
    ftp_rejected => "baton_ftp_refused_total" { "cause" = "command" },
    /// FTP data connections reset: from another address than the session's client.
    ftp_foreign_data => "baton_ftp_data_refused_total" { "cause" = "foreign" },
    /// FTP data connections reset: to a passive port no session waits on.
    ftp_unclaimed_data => "baton_ftp_data_refused_total" { "cause" = "unclaimed" },
    /// FTP transfers completed (226 sent).
    ftp_transfers => "baton_ftp_transfers_total",
    /// Bytes sent on FTP data connections (objects and listings).
    ftp_data_bytes => "baton_ftp_data_bytes_total",
    /// RTSP control connections accepted (issue 18).
    rtsp_connections => "baton_rtsp_connections_total",
    /// RTSP requests answered.
    rtsp_requests => "baton_rtsp_requests_total",
    /// RTSP requests refused (answered 4xx or 5xx: malformed, unknown session, foreign destination...).
    rtsp_refused => "baton_rtsp_refused_total",
    /// RTSP sessions set up (SETUP that created a session).
    rtsp_sessions => "baton_rtsp_sessions_total",
    /// RTSP sessions ended by their timeout (no request nor RTCP report).
    rtsp_sessions_expired => "baton_rtsp_sessions_expired_total",
    /// RTP packets sent, by transport: UDP datagrams.
    rtp_packets_udp => "baton_rtp_packets_total" { "transport" = "udp" },
    /// RTP packets sent, by transport: interleaved frames on the RTSP connection.
    rtp_packets_tcp => "baton_rtp_packets_total" { "transport" = "tcp" },
    /// RTP bytes sent (headers and payload).
    rtp_bytes => "baton_rtp_bytes_total",
    /// RTCP packets sent (sender reports, the final BYE).
    rtcp_sent => "baton_rtcp_packets_total" { "direction" = "sent" },
    /// UDP datagrams received from RTSP clients (RTCP receiver reports, NAT punches).
    rtcp_received => "baton_rtcp_packets_total" { "direction" = "received" },
    /// FTP connections taken over and continued here from their bundle, by role: control.
    ftp_restored_control => "baton_ftp_restored_total" { "role" = "control" },
    /// FTP connections taken over and continued here from their bundle, by role: data
    /// (a transfer resumed at its byte).
    ftp_restored_data => "baton_ftp_restored_total" { "role" = "data" },
    /// FTP connections taken over but reset: no state, a record that does not decode,
    /// or a session `Session::restore` refuses.
    ftp_not_restored => "baton_ftp_not_restored_total",
    /// FTP bundle checkpoints written (control and data records in one slot write).
    ftp_bundle_writes => "baton_ftp_bundle_checkpoints_total",
    /// RTSP bundle checkpoints written (session and RTP flow in the control connection's slot).
    rtsp_bundle_writes => "baton_rtsp_bundle_checkpoints_total",
    /// RTSP sessions taken over and continued here from their bundle (the RTP flow resumed).
    rtsp_restored => "baton_rtsp_restored_total",
    /// RTSP connections taken over but reset: no state, a record that does not decode,
    /// or an object no longer found.
    rtsp_not_restored => "baton_rtsp_not_restored_total",
    /// 304 answers.
    not_modified,
    /// 412 answers (If-Match / If-Unmodified-Since failed).
    precondition_failed,
    /// 206 answers.
    partial,
    /// 416 answers.
    range_not_satisfiable,
    /// 502 answers (origin unreachable, bad, or 5xx).
    bad_gateway,
    /// 504 answers (origin timeout).
    gateway_timeout,
}

/// Adds one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl HttpCounters {
    /// Counts one response by its status.
    pub(crate) fn status(&self, status: u16) {
        bump(match status {
            200..=299 => &self.responses_2xx,
            300..=399 => &self.responses_3xx,
            400..=499 => &self.responses_4xx,
            _ => &self.responses_5xx,
        });
        match status {
            206 => bump(&self.partial),
            304 => bump(&self.not_modified),
            400 => bump(&self.bad_request),
            405 => bump(&self.method_not_allowed),
            408 => bump(&self.request_timeouts),
            412 => bump(&self.precondition_failed),
            414 => bump(&self.uri_too_long),
            416 => bump(&self.range_not_satisfiable),
            431 => bump(&self.headers_too_large),
            501 => bump(&self.not_implemented),
            505 => bump(&self.version_not_supported),
            502 => bump(&self.bad_gateway),
            504 => bump(&self.gateway_timeout),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_counters_keep_their_prometheus_names_and_labels() {
        let c = HttpCounters::default();
        c.status(206);
        bump(&c.requests);
        let m = c.snapshot().metrics();
        assert_eq!(m.len(), 61);
        assert_eq!(m[0].name, "baton_http_requests_total");
        assert_eq!(m[0].help, "Request heads parsed.");
        assert_eq!(m[0].value, 1);
        let ok = m
            .iter()
            .find(|m| m.label == Some(("class", "2xx")))
            .unwrap();
        assert_eq!(ok.name, "baton_http_responses_total");
        assert_eq!(ok.help, "Responses by status class.");
        assert_eq!(ok.value, 1);
    }

    #[test]
    fn the_box_total_is_the_sum_of_its_workers() {
        let (a, b) = (HttpCounters::default(), HttpCounters::default());
        bump(&a.uploads);
        bump(&b.uploads);
        c_status_twice(&b);
        let mut total = a.snapshot();
        total.add(&b.snapshot());
        assert_eq!(total.uploads, 2);
        assert_eq!(total.bad_gateway, 2);
        assert_eq!(total.responses_5xx, 2);
    }

    fn c_status_twice(c: &HttpCounters) {
        c.status(502);
        c.status(502);
    }
}
