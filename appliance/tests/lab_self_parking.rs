//! A box's own idle keep-alive connections kept as their checkpoints alone
//! (issue 19, `checkpoint.park_idle_after_ms`): parked after a short rest,
//! each comes back at its client's next request (the answer identical, no
//! RST), parks again, and a survivor takes the parked ones over from their
//! records when their box dies (and parks them in turn); at its idle limit a parked connection is
//! closed as a live one is (a FIN, never a RST).
mod common;

use common::*;

/// Connections of the lab's client.
const CLIENTS: usize = 200;
/// `checkpoint.park_idle_after_ms` in these labs.
const PARK_AFTER_MS: u64 = 300;

/// Restarts every box of `boxes` with `options` ((section, key, value)).
fn restart_with(g: &LabGuard, boxes: u32, options: &[(&str, &str, &str)]) {
    let d = &g.driver;
    for n in 1..=boxes {
        d.kill(n).unwrap_or_else(|e| panic!("kill box{n}: {e}"));
        for (section, key, value) in options {
            d.set_box_option(n, section, key, value)
                .unwrap_or_else(|e| panic!("{section}.{key}: {e}"));
        }
    }
    for n in 1..=boxes {
        d.start(n).unwrap_or_else(|e| panic!("start box{n}: {e}"));
    }
}

/// `name` summed over `boxes`, once it reaches `at_least` or after 20 s.
fn wait_for_sum(g: &LabGuard, boxes: &[usize], name: &str, at_least: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let sum = metric_sum(g, boxes, name);
        if sum >= at_least || std::time::Instant::now() >= deadline {
            return sum;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Box `n`'s dataplane counter `name`.
fn dataplane(g: &LabGuard, n: usize, name: &str) -> u64 {
    metric_value(&box_metrics(g, n), &format!("baton_dataplane_{name}_total"))
}

#[test]
fn lab_parked_connections_are_answered_again_and_taken_over_from_their_records() {
    let g = LabGuard::up("btsp1", &["--boxes", "3"]);
    let park_after = PARK_AFTER_MS.to_string();
    restart_with(&g, 3, &[("checkpoint", "park_idle_after_ms", &park_after)]);
    warm_caches(&g, 3, "1K.bin");
    let sha = g.listed_sha("1K.bin");
    let rst = RstCapture::start(&g);
    let mut clients = KeepaliveClient::connect(&g, "198.18.0.11", CLIENTS, "/1K.bin", 3);
    // Every connection rests, answered: box 1 parks all of them.
    wait_for_metric(&g, 1, "baton_http_parked_total", CLIENTS as u64);
    let open = dataplane(&g, 1, "tcp_open");
    let unparked = metric_value(&box_metrics(&g, 1), "baton_http_unparked_total");
    assert!(open < 10, "{open} TCBs left of {CLIENTS} parked");
    assert_eq!(unparked, 0);

    // Each asks again: brought back by its request, answered whole.
    let again = clients.round();
    assert!(
        again.contains(&format!("ok={CLIENTS} of={CLIENTS} sha={sha} p50_ms=")),
        "not answered whole after parking: {again}"
    );
    let metrics = box_metrics(&g, 1);
    let unparked = metric_value(&metrics, "baton_http_unparked_total");
    assert_eq!(unparked, CLIENTS as u64, "each by its request\n{again}");
    assert_eq!(dataplane(&g, 1, "tcp_unparked"), CLIENTS as u64);
    assert_eq!(
        metric_value(&metrics, "baton_dataplane_tcp_lazy_restored_total"),
        0,
        "no takeover counted"
    );

    // Parked again, then box 1 dies: the survivors restore them from
    // the parked records, each at its client's request.
    wait_for_metric(&g, 1, "baton_http_parked_total", 2 * CLIENTS as u64);
    ok(g.lab(&["kill", "box1"]));
    let after_kill = clients.round();
    // The survivors park what they took over once it rests, and bring
    // each back at its next request.
    let parked_by_survivors = wait_for_sum(&g, &[2, 3], "baton_http_parked_total", CLIENTS as u64);
    let on_survivors = clients.round();
    let complete = clients.finish();
    let context = format!(
        "after parking: {again}\nafter the kill: {after_kill}\nparked on the survivors: \
         {parked_by_survivors}\nafter that: {on_survivors}"
    );
    assert!(complete, "an answer was missing or wrong\n{context}");
    assert!(
        after_kill.contains(&format!("ok={CLIENTS} of={CLIENTS} sha={sha} p50_ms=")),
        "not answered whole after the kill\n{context}"
    );
    assert!(
        parked_by_survivors >= CLIENTS as u64,
        "the survivors did not park what they took over\n{context}"
    );
    assert!(
        on_survivors.contains(&format!("ok={CLIENTS} of={CLIENTS} sha={sha} p50_ms=")),
        "not answered whole from the survivors' parked records\n{context}"
    );
    let restored = restored_by(&g, &[2, 3], CLIENTS as u64);
    assert_eq!(restored, CLIENTS as u64, "{context}");
    rst.assert_none();
}

/// Opens COUNT keep-alive connections to HOST:80, asks PATH once on each,
/// then waits up to WAIT seconds for the server to close each: prints
/// `eof=E reset=R of=COUNT` (an EOF is the server's FIN).
const WAIT_FOR_CLOSE: &str = r#"
import selectors, socket, sys, time
host, count, path, wait = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
conns = []
for _ in range(count):
    s = socket.create_connection((host, 80))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, body = buf.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += s.recv(65536)
    s.setblocking(False)
    conns.append(s)
sel = selectors.DefaultSelector()
for s in conns:
    sel.register(s, selectors.EVENT_READ)
eof = reset = 0
deadline = time.time() + wait
while eof + reset < count and time.time() < deadline:
    for key, _ in sel.select(timeout=0.5):
        try:
            data = key.fileobj.recv(65536)
        except ConnectionResetError:
            reset += 1
            sel.unregister(key.fileobj)
            continue
        if not data:
            eof += 1
            sel.unregister(key.fileobj)
print(f"eof={eof} reset={reset} of={count}", flush=True)
for s in conns:
    s.close()
"#;

#[test]
fn lab_a_parked_connection_is_closed_at_its_idle_limit_with_a_fin() {
    const IDLE: usize = 40;
    let g = LabGuard::up("btsp2", &["--boxes", "2"]);
    let park_after = PARK_AFTER_MS.to_string();
    restart_with(
        &g,
        2,
        &[
            ("checkpoint", "park_idle_after_ms", &park_after),
            ("limits", "idle_timeout_ms", "3000"),
        ],
    );
    warm_caches(&g, 2, "1K.bin");
    let rst = RstCapture::start(&g);
    let count = IDLE.to_string();
    let out = ok(run_client(
        &g,
        &[
            "python3",
            "-c",
            WAIT_FOR_CLOSE,
            "198.18.0.11",
            &count,
            "/1K.bin",
            "20",
        ],
    ));
    let metrics = box_metrics(&g, 1);
    let context = format!("client: {out}\nmetrics:\n{metrics}");
    // Parked first, then brought back (probed) at the idle limit and
    // closed by the session as a live connection is.
    assert!(
        out.contains(&format!("eof={IDLE} reset=0 of={IDLE}")),
        "{context}"
    );
    assert_eq!(
        metric_value(&metrics, "baton_http_parked_total"),
        IDLE as u64,
        "{context}"
    );
    assert_eq!(
        metric_value(&metrics, "baton_http_unparked_total"),
        IDLE as u64,
        "{context}"
    );
    assert!(
        metric_value(&metrics, "baton_http_idle_timeouts_total") >= IDLE as u64,
        "{context}"
    );
    // The client itself saw no reset (above); the capture, which may miss
    // some of the last burst of closes, must have seen traffic.
    rst.assert_none_with_fins(1);
}

/// A drain moves parked connections as it moves live ones: handed to the
/// survivors from their records (`App::on_handoff_parked`), each answered
/// right after the drain and again once the address moved, byte-exact,
/// without a retransmission by the client or a RST.
#[test]
fn lab_a_drain_hands_parked_connections_over_unnoticed() {
    const PARKED: usize = 120;
    let g = LabGuard::up("btsp3", &["--boxes", "3"]);
    let park_after = PARK_AFTER_MS.to_string();
    restart_with(&g, 3, &[("checkpoint", "park_idle_after_ms", &park_after)]);
    warm_caches(&g, 3, "1K.bin");
    let sha = g.listed_sha("1K.bin");
    let rst = RstCapture::start(&g);
    let mut client = KeepaliveClient::connect(&g, "198.18.0.11", PARKED, "/1K.bin", 2);
    wait_for_metric(&g, 1, "baton_http_parked_total", PARKED as u64);
    let drained = ok(g.lab(&["drain", "box1"]));
    let mut rounds = vec![client.round()];
    std::thread::sleep(std::time::Duration::from_millis(1500));
    rounds.push(client.round());
    let complete = client.finish();
    let context = format!("drain: {drained}\nrounds:\n{}", rounds.join("\n"));
    assert!(complete, "an answer was missing or wrong\n{context}");
    for round in &rounds {
        assert!(
            round.contains(&format!("ok={PARKED} of={PARKED} sha={sha} p50_ms=")),
            "a round was not answered whole\n{context}"
        );
        assert!(
            round.ends_with(" retrans=0"),
            "the client retransmitted: a request was lost\n{context}"
        );
    }
    let adopted: u64 = [2, 3]
        .iter()
        .map(|b| {
            let log = std::fs::read_to_string(g.file(&format!("box{b}.log"))).unwrap_or_default();
            log.lines()
                .filter(|l| l.contains("adopting connections handed over"))
                .map(|l| log_field(&strip_ansi(l), "adopted"))
                .sum::<u64>()
        })
        .sum();
    assert_eq!(adopted, PARKED as u64, "{context}");
    rst.assert_none();
}
