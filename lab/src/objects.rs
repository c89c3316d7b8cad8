//! The lab's objects: deterministic pseudo-random files the origin serves,
//! and their sha256 list in `sha256sum` format, so a test can check a
//! download byte for byte.
//!
//! Bytes come from splitmix64 seeded by the object's name: every lab, on
//! every machine, serves the same `50M.bin`. Generated objects are kept in
//! [`CACHE_DIR`] and hard-linked (or copied) into a new lab, which keeps
//! `lab up` fast. It must not know how the objects are served.
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Context, Result};
use sha2::{Digest, Sha256};
use tracing::info;

/// The objects LAB.md promises, with their sizes.
pub const OBJECTS: &[(&str, u64)] = &[
    ("1K.bin", 1024),
    ("1M.bin", 1 << 20),
    ("50M.bin", 50 << 20),
    ("100M.bin", 100 << 20),
];

/// The test clip (issue 18, RTSP): about 30 s of MPEG-TS video and audio
/// made by ffmpeg, small (320x240 MPEG-2 at 300 kbit/s, MP2 audio) so
/// `lab up` stays fast. Kept in the cache folder with its own stamp: labs
/// of older trees, which know no clip, leave it alone.
pub const CLIP: &str = "clip.ts";

/// The clip's length in seconds.
pub const CLIP_SECS: u32 = 30;

/// Bumped whenever the clip's recipe changes.
const CLIP_RECIPE: &str = "testsrc320x240-mpeg2-300k-mp2-30s-v1";

/// Where generated objects are kept between labs.
pub const CACHE_DIR: &str = "/var/cache/baton-lab/objects";

/// Bumped whenever the generator changes, so a stale cache is not reused.
const GENERATOR: &str = "splitmix64-v1";

const CHUNK: usize = 1 << 20;

/// splitmix64 (Steele, Lea, Flood 2014): fast and good enough to make bytes
/// that do not compress and that no other object shares, and to drive the
/// lab trials' random choices from a seed that replays them.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    fn seeded_by(name: &str) -> Self {
        // FNV-1a of the name as the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        SplitMix64(h)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Writes object `name` of `size` bytes to `path`; returns its sha256 hex.
fn generate(name: &str, size: u64, path: &Path) -> Result<String> {
    // A new inode, never a truncation: the old file may be hard-linked into
    // a running lab, whose origin must keep serving it unchanged.
    let _ = fs::remove_file(path);
    let file =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(CHUNK, file);
    let mut rng = SplitMix64::seeded_by(name);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        rng.fill(&mut buf[..n]);
        hash.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(hex(&hash.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 list in `sha256sum` format ("HEX  NAME" per line).
fn sha_list(sums: &[(String, &str)]) -> String {
    sums.iter().map(|(h, n)| format!("{h}  {n}\n")).collect()
}

/// Whether the cache holds every object at its size, made by this
/// generator.
fn cache_is_good(cache: &Path) -> bool {
    let stamp = fs::read_to_string(cache.join("GENERATOR")).unwrap_or_default();
    stamp.trim() == GENERATOR
        && cache.join("objects.sha256").is_file()
        && OBJECTS.iter().all(|(name, size)| {
            fs::metadata(cache.join(name))
                .map(|m| m.len() == *size)
                .unwrap_or(false)
        })
}

/// Fills the cache folder with freshly generated objects.
fn fill_cache(cache: &Path) -> Result<()> {
    info!("generating lab objects into {}", cache.display());
    fs::create_dir_all(cache).with_context(|| format!("cannot create {}", cache.display()))?;
    let _ = fs::remove_file(cache.join("GENERATOR"));
    let mut sums = Vec::new();
    for (name, size) in OBJECTS {
        sums.push((generate(name, *size, &cache.join(name))?, *name));
    }
    fs::write(cache.join("objects.sha256"), sha_list(&sums))?;
    // The stamp goes last: a cache cut short by a crash is never reused.
    fs::write(cache.join("GENERATOR"), GENERATOR)?;
    Ok(())
}

/// Puts the objects into `objects_dir` and their sha256 list at `sha_file`,
/// reusing the cache at `cache` when it is good.
pub fn install(cache: &Path, objects_dir: &Path, sha_file: &Path) -> Result<()> {
    fs::create_dir_all(cache).with_context(|| format!("cannot create {}", cache.display()))?;
    // Labs of other prefixes may come up at the same time (parallel test
    // binaries): one fills the cache, the others wait and reuse it.
    let lock_path = cache.join(".lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    // SAFETY: flock on a descriptor we own; released when `lock` drops.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        crate::bail!(
            "flock {}: {}",
            lock_path.display(),
            std::io::Error::last_os_error()
        );
    }
    if !cache_is_good(cache) {
        fill_cache(cache)?;
    }
    let clip_sha = clip(cache)?;
    fs::create_dir_all(objects_dir)
        .with_context(|| format!("cannot create {}", objects_dir.display()))?;
    for name in OBJECTS.iter().map(|(n, _)| *n).chain([CLIP]) {
        let (from, to) = (cache.join(name), objects_dir.join(name));
        let _ = fs::remove_file(&to);
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to)
                .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        }
    }
    let mut list = fs::read_to_string(cache.join("objects.sha256"))
        .with_context(|| format!("cannot read {}", cache.join("objects.sha256").display()))?;
    list.push_str(&sha_list(&[(clip_sha, CLIP)]));
    fs::write(sha_file, list).with_context(|| format!("cannot write {}", sha_file.display()))?;
    write_ftp_index(objects_dir)
}

/// Makes the clip in the cache folder unless it is there by this recipe;
/// returns its sha256 hex. Needs ffmpeg (a missing one fails `lab up`
/// loudly: the RTSP tests would have nothing to stream).
fn clip(cache: &Path) -> Result<String> {
    let (path, stamp) = (cache.join(CLIP), cache.join("CLIP"));
    let sums = cache.join("clip.sha256");
    let recipe = fs::read_to_string(&stamp).unwrap_or_default();
    if recipe.trim() == CLIP_RECIPE && path.is_file() {
        if let Ok(sha) = fs::read_to_string(&sums) {
            return Ok(sha.trim().to_string());
        }
    }
    info!("making {CLIP} with ffmpeg into {}", cache.display());
    let _ = fs::remove_file(&stamp);
    // A new inode: the old one may be hard-linked into a running lab.
    let _ = fs::remove_file(&path);
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
        .args(["-t", &CLIP_SECS.to_string()])
        .args([
            "-c:v",
            "mpeg2video",
            "-b:v",
            "300k",
            "-c:a",
            "mp2",
            "-b:a",
            "64k",
        ])
        .args(["-f", "mpegts"])
        .arg(&path)
        .output()
        .with_context(|| {
            format!("cannot run ffmpeg to make {CLIP} (apt-get install ffmpeg; scripts/test does)")
        })?;
    if !out.status.success() {
        crate::bail!(
            "ffmpeg could not make {CLIP}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sha =
        hex(&Sha256::digest(fs::read(&path).with_context(|| {
            format!("cannot read {}", path.display())
        })?));
    fs::write(&sums, &sha)?;
    // The stamp goes last, as for the other objects.
    fs::write(&stamp, CLIP_RECIPE)?;
    Ok(sha)
}

/// The origin's index of its objects, which a box's FTP catalog reads
/// (`/.ftp-index`: `name size mtime` a line; appliance `serve::ftp_index`).
fn write_ftp_index(objects_dir: &Path) -> Result<()> {
    let mut text = String::from("# name size mtime (issue 17: the FTP catalog)\n");
    for (name, size) in OBJECTS {
        let mtime = fs::metadata(objects_dir.join(name))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        text.push_str(&format!("{name} {size} {mtime}\n"));
    }
    let path = objects_dir.join(FTP_INDEX);
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The index's file name in the origin's folder.
pub const FTP_INDEX: &str = ".ftp-index";

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("baton-objects-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn same_name_gives_same_bytes_and_other_names_differ() {
        let d = temp_dir("det");
        let a = generate("1K.bin", 1024, &d.join("a")).unwrap();
        let b = generate("1K.bin", 1024, &d.join("b")).unwrap();
        let c = generate("1M.bin", 1024, &d.join("c")).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            fs::read(d.join("a")).unwrap(),
            fs::read(d.join("b")).unwrap()
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn odd_sizes_are_written_exactly_and_hash_matches_content() {
        let d = temp_dir("odd");
        let sum = generate("x", 1_000_003, &d.join("x")).unwrap();
        let bytes = fs::read(d.join("x")).unwrap();
        assert_eq!(bytes.len(), 1_000_003);
        assert_eq!(sum, hex(&Sha256::digest(&bytes)));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_clip_is_made_once_and_its_listed_sha_is_its_bytes() {
        let dir = temp_dir("clip");
        let sha = clip(&dir).unwrap_or_else(|e| panic!("{e}"));
        let bytes = fs::read(dir.join(CLIP)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sha, hex(&Sha256::digest(&bytes)));
        // MPEG-TS: whole 188-byte packets, each with its sync byte.
        assert!(
            bytes.len() > 100 * 188 && bytes.len() % 188 == 0,
            "{}",
            bytes.len()
        );
        assert!(bytes.chunks(188).all(|p| p[0] == 0x47));
        // Made once: a second lab reuses the same file.
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        let before = inode(&dir.join(CLIP));
        assert_eq!(clip(&dir).unwrap_or_else(|e| panic!("{e}")), sha);
        assert_eq!(inode(&dir.join(CLIP)), before);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn sha_list_is_in_sha256sum_format() {
        let line = sha_list(&[("ab".repeat(32), "1K.bin")]);
        assert_eq!(line, format!("{}  1K.bin\n", "ab".repeat(32)));
    }
}
