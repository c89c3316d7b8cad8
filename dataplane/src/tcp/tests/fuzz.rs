//! Random segments and timeouts against TCBs in every state: nothing may
//! panic, and the send sequence space stays ordered. Input from the network
//! never reaches an `unwrap` (STYLE.md); this keeps it so.

use super::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_segment<'a>(
    rng: &mut Rng,
    near_rcv: SeqNum,
    near_snd: SeqNum,
    buf: &'a [u8],
) -> Segment<'a> {
    let jitter = |rng: &mut Rng, base: SeqNum| match rng.pick(4) {
        0 => base,
        1 => base + rng.pick(70_000) as u32,
        2 => base - rng.pick(70_000) as u32,
        _ => SeqNum(rng.next() as u32),
    };
    let bits = rng.next();
    let mut opts = Options::default();
    if bits & 1 << 8 != 0 {
        opts.timestamps = Some((rng.next() as u32, rng.next() as u32));
    }
    if bits & 1 << 9 != 0 {
        opts.mss = Some(rng.next() as u16);
        opts.window_scale = Some(rng.pick(20) as u8);
        opts.sack_permitted = true;
    }
    for b in opts.sack_blocks.iter_mut() {
        if rng.pick(3) == 0 {
            let l = jitter(rng, near_snd);
            *b = Some((l, l + rng.pick(100_000) as u32));
        }
    }
    let len = rng.pick(buf.len() as u64 + 1) as usize;
    Segment {
        src_port: 40_000,
        dst_port: 80,
        seq: jitter(rng, near_rcv),
        ack: jitter(rng, near_snd),
        flags: Flags {
            fin: bits & 1 != 0 && rng.pick(4) == 0,
            syn: bits & 2 != 0 && rng.pick(8) == 0,
            rst: bits & 4 != 0 && rng.pick(16) == 0,
            psh: bits & 8 != 0,
            ack: bits & 16 != 0 || rng.pick(2) == 0,
            urg: bits & 32 != 0,
            ece: false,
            cwr: false,
        },
        window: rng.next() as u16,
        options: opts,
        payload: &buf[..len],
    }
}

#[test]
fn random_segments_and_timeouts_never_panic() {
    let buf = pattern(3000);
    for seed in 1..40u64 {
        let mut rng = Rng(seed * 0x9E37_79B9);
        let fx = Fx::new();
        let config = TcpConfig {
            recv_buffer: 1 + rng.pick(300_000) as u32,
            send_buffer: 1 + rng.pick(300_000) as u32,
            ..TcpConfig::default()
        };
        let mut tcbs = vec![
            established_with(&fx, config.clone(), opts_all()).0,
            established(&fx).0,
            syn_received(&fx, config.clone(), &syn(opts_all())).0,
            Tcb::connect(fx.at(0), config.clone(), tuple(), SeqNum(rng.next() as u32)),
        ];
        let e = tcbs[0].export(fx.at(0));
        tcbs.push(Tcb::restore(fx.at(0), config.clone(), &e));
        let mut l = listener(config.clone());
        let mut ms = 0;
        for _ in 0..3_000 {
            ms += rng.pick(300);
            let now = fx.at(ms);
            for t in tcbs.iter_mut() {
                let ex = t.export(now);
                let s = random_segment(&mut rng, SeqNum(ex.rcv_nxt), SeqNum(ex.snd_una), &buf);
                t.on_segment(now, &s);
                match rng.pick(6) {
                    0 => {
                        let _ = t.send(Bytes::from(pattern(rng.pick(5000) as usize)));
                    }
                    1 => {
                        let mut out = [0u8; 1000];
                        t.recv(&mut out);
                    }
                    2 => t.on_timeout(now),
                    3 if rng.pick(50) == 0 => t.close(),
                    _ => {}
                }
                while let Some(o) = t.poll_transmit(now) {
                    assert!(o.payload_len() <= 1460);
                }
                while t.poll_event().is_some() {}
                let after = t.export(now);
                assert!(
                    SeqNum(after.snd_una).le(SeqNum(after.snd_nxt)),
                    "seed {seed}"
                );
                if let Some(d) = t.poll_timeout() {
                    assert!(d >= fx.at(0));
                }
                // The listener too.
                let s = random_segment(&mut rng, SeqNum(ex.rcv_nxt), SeqNum(ex.snd_una), &buf);
                if s.flags.syn {
                    let _ = l.on_syn(now, tuple(), &s, rng.pick(3) as usize, 1);
                } else if l.cookie_ack(now, tuple(), &s).is_none() {
                    let _ = l.on_unknown(now, tuple(), &s);
                }
            }
        }
    }
}
