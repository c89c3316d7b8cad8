//! Does the sessions' [`SpoolOp`]s off the worker thread: one writer thread
//! per worker takes them from a channel in order, keeps the open files,
//! and answers each with a [`SpoolDone`] on a channel the worker polls
//! (waking the worker through the fetchers' `Waker`).
//!
//! Order is what keeps the takeover guarantee: a session counts a body
//! byte as spooled (and lets a checkpoint cover it, which with
//! `ack_after_commit` acknowledges it) only once its `Append` is answered,
//! and ops of one file are done in the order they were made, so a file is
//! never longer in the checkpoint than on disk.
//!
//! It knows files and channels, nothing of HTTP or sessions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::upload::{Spool, SpoolDone, SpoolFile, SpoolOp, SpoolWrite};
use crate::cache::Waker;

/// The open spool files of one writer, and the file operations on them.
#[derive(Debug)]
pub struct SpoolFiles {
    spool: Arc<Spool>,
    open: HashMap<Arc<str>, SpoolFile>,
}

impl SpoolFiles {
    /// No file open yet, in `spool`.
    pub fn new(spool: Arc<Spool>) -> SpoolFiles {
        SpoolFiles {
            spool,
            open: HashMap::new(),
        }
    }

    /// Does `w` now.
    pub fn apply(&mut self, w: SpoolWrite) -> SpoolDone {
        let kind = w.op.kind();
        let result = match w.op {
            SpoolOp::Create => self.spool.create(&w.name).map(|f| {
                self.open.insert(Arc::clone(&w.name), f);
                0
            }),
            SpoolOp::Reopen { len } => self.spool.reopen(&w.name, len).map(|f| {
                self.open.insert(Arc::clone(&w.name), f);
                len
            }),
            SpoolOp::Append(data) => match self.open.get_mut(&w.name) {
                Some(f) => f.append(&data).map(|()| f.len()),
                None => Err(std::io::Error::other("spool file not open")),
            },
            SpoolOp::Remove => {
                match self.open.remove(&w.name) {
                    Some(f) => f.remove(),
                    None => self.spool.remove(&w.name),
                }
                Ok(0)
            }
        };
        SpoolDone {
            upload: w.upload,
            op: kind,
            result: result.map_err(|e| format!("{} in {}", e, self.spool.dir().display())),
        }
    }
}

/// One worker's spool writer: a thread, or — when no thread could be
/// started — the worker itself.
#[derive(Debug)]
pub struct SpoolWriter<C> {
    ops: Option<Sender<(C, SpoolWrite)>>,
    done_tx: Sender<(C, SpoolDone)>,
    done: Receiver<(C, SpoolDone)>,
    inline: Option<SpoolFiles>,
    spool: Arc<Spool>,
    /// Writes submitted and not answered yet: with none, the worker's
    /// every-iteration look at the answers skips the channel.
    outstanding: usize,
}

impl<C: Send + 'static> SpoolWriter<C> {
    /// A writer thread named `name` for `spool`; it wakes the worker
    /// through `waker` when answers wait.
    pub fn spawn(spool: Arc<Spool>, waker: Arc<dyn Waker>, name: String) -> SpoolWriter<C> {
        let (ops_tx, ops_rx) = crossbeam_channel::unbounded::<(C, SpoolWrite)>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let answers = done_tx.clone();
        let files = SpoolFiles::new(Arc::clone(&spool));
        let started = std::thread::Builder::new().name(name).spawn(move || {
            let mut files = files;
            while let Ok((conn, w)) = ops_rx.recv() {
                let done = files.apply(w);
                if answers.send((conn, done)).is_err() {
                    return;
                }
                // One wake per batch: the worker drains every answer.
                if ops_rx.is_empty() {
                    waker.wake();
                }
            }
        });
        match started {
            Ok(_) => SpoolWriter {
                ops: Some(ops_tx),
                done_tx,
                done: done_rx,
                inline: None,
                spool,
                outstanding: 0,
            },
            Err(e) => {
                tracing::warn!("no spool writer thread ({e}): uploads are spooled on the worker");
                SpoolWriter {
                    ops: None,
                    done_tx,
                    done: done_rx,
                    inline: Some(SpoolFiles::new(Arc::clone(&spool))),
                    spool,
                    outstanding: 0,
                }
            }
        }
    }

    /// Queues `w` for `conn`'s session.
    pub fn submit(&mut self, conn: C, w: SpoolWrite) {
        self.outstanding += 1;
        let w = match &self.ops {
            Some(tx) => match tx.send((conn, w)) {
                Ok(()) => return,
                Err(e) => e.into_inner(),
            },
            None => (conn, w),
        };
        // No thread (or it ended): do it here rather than lose it.
        let spool = &self.spool;
        let files = self
            .inline
            .get_or_insert_with(|| SpoolFiles::new(Arc::clone(spool)));
        let done = files.apply(w.1);
        let _ = self.done_tx.send((w.0, done));
    }

    /// An answer, if one waits.
    pub fn try_done(&mut self) -> Option<(C, SpoolDone)> {
        if self.outstanding == 0 {
            return None;
        }
        let done = self.done.try_recv().ok()?;
        self.outstanding -= 1;
        Some(done)
    }

    /// An answer, waiting at most `timeout` for one.
    pub fn wait_done(&mut self, timeout: Duration) -> Option<(C, SpoolDone)> {
        if self.outstanding == 0 {
            return None;
        }
        let done = self.done.recv_timeout(timeout).ok()?;
        self.outstanding -= 1;
        Some(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::upload::SpoolOpKind;
    use std::fs;

    struct NoWake;
    impl Waker for NoWake {
        fn wake(&self) {}
    }

    fn write(name: &Arc<str>, op: SpoolOp) -> SpoolWrite {
        SpoolWrite {
            name: Arc::clone(name),
            upload: 1,
            op,
        }
    }

    #[test]
    fn the_writer_thread_does_each_files_ops_in_order_and_answers_each() {
        let spool = Arc::new(Spool::private().unwrap());
        let mut w: SpoolWriter<u32> =
            SpoolWriter::spawn(Arc::clone(&spool), Arc::new(NoWake), "spool-test".into());
        let name: Arc<str> = "ordered".into();
        w.submit(7, write(&name, SpoolOp::Create));
        for piece in [&b"abc"[..], b"defg", b"h"] {
            w.submit(
                7,
                write(&name, SpoolOp::Append(bytes::Bytes::copy_from_slice(piece))),
            );
        }
        let answers: Vec<_> = (0..4)
            .map(|_| w.wait_done(Duration::from_secs(5)).expect("an answer"))
            .collect();
        let lens: Vec<_> = answers.iter().map(|(_, d)| d.result.clone()).collect();
        assert_eq!(
            lens,
            [Ok(0), Ok(3), Ok(7), Ok(8)],
            "each answer says what is spooled"
        );
        assert!(answers.iter().all(|(c, _)| *c == 7));
        assert_eq!(fs::read(spool.path(&name)).unwrap(), b"abcdefgh");
        w.submit(7, write(&name, SpoolOp::Remove));
        let (_, done) = w.wait_done(Duration::from_secs(5)).expect("an answer");
        assert_eq!(done.op, SpoolOpKind::Remove);
        assert!(!spool.path(&name).exists());
        let _ = fs::remove_dir(spool.dir());
    }

    #[test]
    fn a_taken_over_file_is_cut_to_its_checkpoint_and_a_short_one_fails() {
        let spool = Arc::new(Spool::private().unwrap());
        let mut files = SpoolFiles::new(Arc::clone(&spool));
        let name: Arc<str> = "taken".into();
        files.apply(write(&name, SpoolOp::Create));
        files.apply(write(
            &name,
            SpoolOp::Append(bytes::Bytes::from_static(b"0123456789")),
        ));
        // A survivor: what the dead box wrote after its checkpoint goes.
        let mut survivor = SpoolFiles::new(Arc::clone(&spool));
        let done = survivor.apply(write(&name, SpoolOp::Reopen { len: 4 }));
        assert_eq!(done.result, Ok(4));
        let done = survivor.apply(write(
            &name,
            SpoolOp::Append(bytes::Bytes::from_static(b"ab")),
        ));
        assert_eq!(done.result, Ok(6));
        assert_eq!(fs::read(spool.path(&name)).unwrap(), b"0123ab");
        let done = survivor.apply(write(&name, SpoolOp::Reopen { len: 100 }));
        assert!(
            done.result.is_err(),
            "a spool shorter than its checkpoint is lost"
        );
        let done = survivor.apply(write(
            &"never-created".into(),
            SpoolOp::Append(bytes::Bytes::from_static(b"x")),
        ));
        assert!(done.result.is_err());
        survivor.apply(write(&name, SpoolOp::Remove));
        let _ = fs::remove_dir(spool.dir());
    }
}
