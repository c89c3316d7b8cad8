//! Validation: walks a span-keeping TOML document and turns it into a
//! [`Config`], collecting every problem instead of stopping at the first.
//!
//! The document is parsed with `toml_edit::ImDocument`, which keeps the byte
//! span of every key, value and table header, so each problem can name its
//! line. Each `section_*` function reads one table: it reads every key first
//! (each read records its own problems), then builds the section only if all
//! required values came out, so one bad key never hides another.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;

use toml_edit::{ImDocument, Item, TableLike, Value};

use crate::error::{ConfigError, Problem};
use crate::model::*;

/// Longest slice of a user's string quoted back in a message.
const QUOTE_MAX: usize = 40;

const ROOT_KEYS: &[&str] = &[
    "box",
    "cluster",
    "service",
    "dataplane",
    "checkpoint",
    "failure",
    "cache",
    "limits",
    "admin",
];

/// Parses and validates `text`; `file` names it in messages.
pub(crate) fn check(text: &str, file: &str) -> Result<Config, ConfigError> {
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            // The span is a byte range (of the offending character).
            let line = e.span().map(|s| line_at(text, s.start));
            let message = e.message().trim().to_string();
            return Err(ConfigError::single(
                file,
                line,
                "syntax",
                format!("invalid TOML: {message}"),
            ));
        }
    };
    let mut c = Checker {
        text,
        problems: Vec::new(),
    };
    let root = Tbl {
        t: doc.as_table(),
        path: String::new(),
        line: None,
    };
    let config = c.config(&root);
    match config {
        Some(config) if c.problems.is_empty() => Ok(config),
        _ => {
            let mut problems = c.problems;
            if problems.is_empty() {
                // Every `None` above comes with a recorded problem; this is
                // a guard against a future section forgetting one.
                problems.push(Problem {
                    line: None,
                    key: String::new(),
                    message: "invalid configuration".to_string(),
                });
            }
            // Line order reads like the file; problems without a line
            // (missing tables) go last. The sort is stable, so problems on
            // one line stay in walk order.
            problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            Err(ConfigError {
                file: file.to_string(),
                problems,
            })
        }
    }
}

/// 1-based line of byte offset `at` in `text` (toml_edit spans are byte
/// ranges); an offset past the end counts as the last line.
fn line_at(text: &str, at: usize) -> usize {
    let bytes = text.as_bytes();
    let upto = bytes.get(..at).unwrap_or(bytes);
    1 + upto.iter().filter(|&&b| b == b'\n').count()
}

/// A table being read, with its dotted path and header line.
struct Tbl<'d> {
    t: &'d dyn TableLike,
    path: String,
    line: Option<usize>,
}

impl Tbl<'_> {
    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

struct Checker<'s> {
    text: &'s str,
    problems: Vec<Problem>,
}

/// A converter from one TOML value to a Rust value, or the message saying
/// what was expected instead.
type Conv<'a, T> = &'a dyn Fn(&Value) -> Result<T, String>;

impl Checker<'_> {
    fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        Some(line_at(self.text, span?.start))
    }

    fn problem(&mut self, line: Option<usize>, key: String, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            key,
            message: message.into(),
        });
    }

    /// Line of `key` in `t`: the key itself, else its value, else the table.
    fn key_line(&self, t: &Tbl<'_>, key: &str) -> Option<usize> {
        t.t.key(key)
            .and_then(|k| self.line(k.span()))
            .or_else(|| t.t.get(key).and_then(|i| self.line(i.span())))
            .or(t.line)
    }

    /// Reports every key of `t` not in `allowed`.
    fn no_other_keys(&mut self, t: &Tbl<'_>, allowed: &[&str]) {
        let unknown: Vec<(String, bool)> =
            t.t.iter()
                .filter(|(k, _)| !allowed.contains(k))
                .map(|(k, item)| (k.to_string(), item.is_table_like()))
                .collect();
        for (key, is_table) in unknown {
            let line = self.key_line(t, &key);
            let what = if t.path.is_empty() && is_table {
                "unknown table"
            } else {
                "unknown key"
            };
            self.problem(
                line,
                t.key_path(&key),
                format!("{what} (expected one of: {})", allowed.join(", ")),
            );
        }
    }

    /// The sub-table `name` of `parent`; a missing required one is reported.
    fn table<'d>(&mut self, parent: &Tbl<'d>, name: &str, required: bool) -> Option<Tbl<'d>> {
        let path = parent.key_path(name);
        let Some(item) = parent.t.get(name) else {
            if required {
                self.problem(parent.line, path, "missing table");
            }
            return None;
        };
        match item.as_table_like() {
            Some(t) => {
                // Dotted and implicit tables have no header span: fall back
                // to where their key is written.
                let line = self
                    .line(item.span())
                    .or_else(|| self.key_line(parent, name));
                Some(Tbl { t, path, line })
            }
            None => {
                let line = self.key_line(parent, name);
                self.problem(
                    line,
                    path,
                    format!("expected a table, found {}", describe_item(item)),
                );
                None
            }
        }
    }

    /// The item of `key` with its line and dotted path; when it is absent,
    /// `Err(default)`, and a missing key is reported when there is no
    /// default.
    fn lookup<'d, T>(
        &mut self,
        t: &Tbl<'d>,
        key: &str,
        default: Option<T>,
    ) -> Result<(&'d Item, Option<usize>, String), Option<T>> {
        let path = t.key_path(key);
        let Some(item) = t.t.get(key) else {
            if default.is_none() {
                self.problem(t.line, path, "missing key");
            }
            return Err(default);
        };
        let line = self.line(item.span()).or_else(|| self.key_line(t, key));
        Ok((item, line, path))
    }

    /// The value of `key`: `default` when absent (a missing key is reported
    /// when there is no default), converted by `conv`.
    fn get<T>(
        &mut self,
        t: &Tbl<'_>,
        key: &str,
        default: Option<T>,
        conv: Conv<'_, T>,
    ) -> Option<T> {
        let (item, line, path) = match self.lookup(t, key, default) {
            Ok(found) => found,
            Err(default) => return default,
        };
        let Some(value) = item.as_value() else {
            // Say what was expected by asking the converter about a value
            // no converter accepts (an empty inline table); its message
            // reads "expected …, found table".
            let msg = match conv(&Value::from(toml_edit::InlineTable::new())) {
                Err(m) => m
                    .split(", found")
                    .next()
                    .unwrap_or("expected a value")
                    .to_string(),
                Ok(_) => "expected a value".to_string(),
            };
            self.problem(line, path, format!("{msg}, found {}", describe_item(item)));
            return None;
        };
        match conv(value) {
            Ok(v) => Some(v),
            Err(m) => {
                self.problem(line, path, m);
                None
            }
        }
    }

    /// The value of `key`, a positive integer, `default` when absent: the
    /// common form of the sections' counts, sizes and timeouts.
    fn positive_or<T: TryFrom<i64>>(&mut self, t: &Tbl<'_>, key: &str, default: T) -> Option<T> {
        self.get(t, key, Some(default), &positive::<T>)
    }

    /// The value of `key`, an integer in `lo..=hi`, `default` when absent.
    fn int_in_or<T: TryFrom<i64>>(
        &mut self,
        t: &Tbl<'_>,
        key: &str,
        default: T,
        lo: i64,
        hi: i64,
    ) -> Option<T> {
        self.get(t, key, Some(default), &int_in::<T>(lo, hi))
    }

    /// An array value of `key`, each element converted by `elem`; every bad
    /// element is reported with its own index and line.
    fn list<T>(
        &mut self,
        t: &Tbl<'_>,
        key: &str,
        default: Option<Vec<T>>,
        elem: Conv<'_, T>,
    ) -> Option<Vec<T>> {
        let (item, line, path) = match self.lookup(t, key, default) {
            Ok(found) => found,
            Err(default) => return default,
        };
        let Some(array) = item.as_array() else {
            self.problem(
                line,
                path,
                format!("expected an array, found {}", describe_item(item)),
            );
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        let mut ok = true;
        for (i, v) in array.iter().enumerate() {
            match elem(v) {
                Ok(x) => out.push(x),
                Err(m) => {
                    ok = false;
                    let l = self.line(v.span()).or(line);
                    self.problem(l, format!("{path}[{i}]"), m);
                }
            }
        }
        ok.then_some(out)
    }

    /// The required table `name` of the root, checked by `section`.
    fn required<T>(
        &mut self,
        root: &Tbl<'_>,
        name: &str,
        section: fn(&mut Self, &Tbl<'_>) -> Option<T>,
    ) -> Option<T> {
        self.table(root, name, true).and_then(|t| section(self, &t))
    }

    /// The optional table `name` of the root, checked by `section`; all
    /// defaults when it is absent.
    fn optional<T: Default>(
        &mut self,
        root: &Tbl<'_>,
        name: &str,
        section: fn(&mut Self, &Tbl<'_>) -> Option<T>,
    ) -> Option<T> {
        match self.table(root, name, false) {
            Some(t) => section(self, &t),
            None => Some(T::default()),
        }
    }

    fn config(&mut self, root: &Tbl<'_>) -> Option<Config> {
        self.no_other_keys(root, ROOT_KEYS);
        let node = self.required(root, "box", Self::section_box);
        let cluster = self.required(root, "cluster", Self::section_cluster);
        let service = self.required(root, "service", Self::section_service);
        let dataplane = self.required(root, "dataplane", Self::section_dataplane);
        let checkpoint = self.required(root, "checkpoint", Self::section_checkpoint);
        let failure = self.optional(root, "failure", Self::section_failure);
        let cache = self.required(root, "cache", Self::section_cache);
        let limits = self.optional(root, "limits", Self::section_limits);
        let admin = self.required(root, "admin", Self::section_admin);

        // Cross-table rule: a box must be one of the members it heartbeats
        // with, or no peer could ever take its connections over.
        if let (Some(node), Some(cluster)) = (&node, &cluster) {
            if !cluster.members.iter().any(|m| m.id == node.id) {
                let line = root
                    .t
                    .get("box")
                    .and_then(|b| b.as_table_like())
                    .and_then(|b| b.get("id"))
                    .and_then(|i| self.line(i.span()));
                let ids: Vec<String> = cluster.members.iter().map(|m| m.id.to_string()).collect();
                self.problem(
                    line,
                    "box.id".to_string(),
                    format!(
                        "box {} is not one of cluster.members (ids: {})",
                        node.id,
                        ids.join(", ")
                    ),
                );
            }
        }

        Some(Config {
            node: node?,
            cluster: cluster?,
            service: service?,
            dataplane: dataplane?,
            checkpoint: checkpoint?,
            failure: failure?,
            cache: cache?,
            limits: limits?,
            admin: admin?,
        })
    }

    fn section_box(&mut self, t: &Tbl<'_>) -> Option<NodeConfig> {
        self.no_other_keys(t, &["id", "name", "log_level"]);
        let id = self.get(t, "id", None, &int_in::<u16>(1, 254));
        let name = self.get(t, "name", Some(None), &|v| non_empty(v).map(Some));
        let log_level = self.get(
            t,
            "log_level",
            Some(DEFAULT_LOG_LEVEL.to_string()),
            &log_filter,
        );
        let id = id?;
        Some(NodeConfig {
            id,
            name: name?.unwrap_or_else(|| format!("box{id}")),
            log_level: log_level?,
        })
    }

    fn section_cluster(&mut self, t: &Tbl<'_>) -> Option<ClusterConfig> {
        self.no_other_keys(t, &["key", "members"]);
        let key = self.get(t, "key", None, &hex_key);
        let members = self.members(t);
        Some(ClusterConfig {
            key: key?,
            members: members?,
        })
    }

    /// `[[cluster.members]]`, or an inline array of inline tables.
    fn members(&mut self, t: &Tbl<'_>) -> Option<Vec<Member>> {
        let path = t.key_path("members");
        let Some(item) = t.t.get("members") else {
            self.problem(
                t.line,
                path,
                "missing key (add one [[cluster.members]] table per box)",
            );
            return None;
        };
        let mut tables: Vec<Tbl<'_>> = Vec::new();
        let mut ok = true;
        match item {
            Item::ArrayOfTables(aot) => {
                for (i, m) in aot.iter().enumerate() {
                    tables.push(Tbl {
                        t: m,
                        path: format!("{path}[{i}]"),
                        line: self.line(m.span()),
                    });
                }
            }
            Item::Value(Value::Array(a)) => {
                for (i, v) in a.iter().enumerate() {
                    match v.as_inline_table() {
                        Some(m) => tables.push(Tbl {
                            t: m,
                            path: format!("{path}[{i}]"),
                            line: self.line(m.span()),
                        }),
                        None => {
                            ok = false;
                            let line = self.line(v.span());
                            self.problem(
                                line,
                                format!("{path}[{i}]"),
                                format!("expected a table, found {}", describe(v)),
                            );
                        }
                    }
                }
            }
            other => {
                let line = self.key_line(t, "members");
                self.problem(
                    line,
                    path,
                    format!(
                        "expected an array of tables ([[cluster.members]]), found {}",
                        describe_item(other)
                    ),
                );
                return None;
            }
        }
        if tables.is_empty() && ok {
            let line = self.key_line(t, "members");
            self.problem(line, path, "expected at least one member");
            return None;
        }
        let mut members = Vec::new();
        let mut seen_ids: HashMap<u16, Option<usize>> = HashMap::new();
        let mut seen_addrs: HashMap<SocketAddr, Option<usize>> = HashMap::new();
        for m in &tables {
            self.no_other_keys(m, &["id", "back_addr"]);
            let id = self.get(m, "id", None, &int_in::<u16>(1, 254));
            let back_addr = self.get(
                m,
                "back_addr",
                None,
                &parsed::<SocketAddr>("a socket address like 198.19.0.11:7400"),
            );
            if let Some(id) = id {
                let line = self.key_line(m, "id");
                if let Some(first) = seen_ids.insert(id, line) {
                    ok = false;
                    self.problem(
                        line,
                        m.key_path("id"),
                        format!("duplicate member id {id}{}", also_at(first)),
                    );
                }
            }
            if let Some(addr) = back_addr {
                let line = self.key_line(m, "back_addr");
                if let Some(first) = seen_addrs.insert(addr, line) {
                    ok = false;
                    self.problem(
                        line,
                        m.key_path("back_addr"),
                        format!("duplicate back_addr {addr}{}", also_at(first)),
                    );
                }
            }
            match (id, back_addr) {
                (Some(id), Some(back_addr)) => members.push(Member { id, back_addr }),
                _ => ok = false,
            }
        }
        ok.then_some(members)
    }

    fn section_service(&mut self, t: &Tbl<'_>) -> Option<ServiceConfig> {
        self.no_other_keys(t, &["ips", "port"]);
        let ips = self.list(
            t,
            "ips",
            None,
            &parsed::<IpAddr>("an IP address like 198.18.0.11"),
        );
        let port = self.int_in_or(t, "port", DEFAULT_SERVICE_PORT, 1, 65535);
        let ips = ips?;
        if ips.is_empty() {
            let line = self.key_line(t, "ips");
            self.problem(line, t.key_path("ips"), "expected at least one IP address");
            return None;
        }
        if let Some(dup) = first_duplicate(&ips) {
            let line = self.key_line(t, "ips");
            self.problem(line, t.key_path("ips"), format!("{dup} is listed twice"));
            return None;
        }
        Some(ServiceConfig { ips, port: port? })
    }

    fn section_dataplane(&mut self, t: &Tbl<'_>) -> Option<DataplaneConfig> {
        self.no_other_keys(
            t,
            &[
                "backend",
                "interface",
                "workers",
                "cores",
                "poll_mode",
                "max_connections",
                "syn_backlog",
                "tcp_idle_timeout_ms",
                "mac",
                "dpdk",
            ],
        );
        let backend = self.get(
            t,
            "backend",
            None,
            &choice(&[("afpacket", Backend::AfPacket), ("dpdk", Backend::Dpdk)]),
        );
        let interface = self.get(t, "interface", None, &interface_name);
        let workers = self.get(t, "workers", None, &positive::<usize>);
        let cores = self.list(t, "cores", Some(Vec::new()), &non_negative::<usize>);
        let poll_mode = self.get(
            t,
            "poll_mode",
            None,
            &choice(&[("busy", PollMode::Busy), ("adaptive", PollMode::Adaptive)]),
        );
        let max_connections = self.positive_or(t, "max_connections", DEFAULT_MAX_CONNECTIONS);
        let syn_backlog = self.positive_or(t, "syn_backlog", DEFAULT_SYN_BACKLOG);
        let tcp_idle_timeout_ms =
            self.positive_or(t, "tcp_idle_timeout_ms", DEFAULT_TCP_IDLE_TIMEOUT_MS);
        let mac = self.get(t, "mac", Some(None), &|v| unicast_mac(v).map(Some));
        let dpdk = match self.table(t, "dpdk", false) {
            Some(d) => self.section_dpdk(&d).map(Some),
            None => Some(None),
        };
        let mut ok = true;
        if let (Some(workers), Some(cores)) = (workers, &cores) {
            let line = self.key_line(t, "cores");
            // One pinned core per worker: a poll-mode worker spins, so two
            // on one core would starve each other.
            if !cores.is_empty() && cores.len() != workers {
                ok = false;
                self.problem(
                    line,
                    t.key_path("cores"),
                    format!(
                        "expected {workers} cores (one per worker, dataplane.workers = {workers}) or none, found {}",
                        cores.len()
                    ),
                );
            } else if let Some(dup) = first_duplicate(cores) {
                ok = false;
                self.problem(
                    line,
                    t.key_path("cores"),
                    format!("core {dup} is listed twice (one worker per core)"),
                );
            }
        }
        if !ok {
            return None;
        }
        Some(DataplaneConfig {
            backend: backend?,
            interface: interface?,
            workers: workers?,
            cores: cores?,
            poll_mode: poll_mode?,
            max_connections: max_connections?,
            syn_backlog: syn_backlog?,
            tcp_idle_timeout_ms: tcp_idle_timeout_ms?,
            mac: mac?,
            dpdk: dpdk?,
        })
    }

    fn section_dpdk(&mut self, t: &Tbl<'_>) -> Option<DpdkConfig> {
        self.no_other_keys(
            t,
            &[
                "eal_args",
                "hugepages",
                "vdevs",
                "memory_mb",
                "mbufs",
                "main_lcore",
                "idle_sleep_us",
                "log_level",
            ],
        );
        let eal_args = self.list(t, "eal_args", Some(Vec::new()), &string);
        let hugepages = self.get(t, "hugepages", Some(false), &boolean);
        let vdevs = self.list(t, "vdevs", Some(Vec::new()), &non_empty);
        // The EAL refuses less than it needs for its own structures; 64 MiB
        // is the floor the DPDK backend applies anyway.
        let memory_mb = self.int_in_or(t, "memory_mb", DEFAULT_DPDK_MEMORY_MB, 64, 1 << 20);
        let mbufs = self.int_in_or(t, "mbufs", DEFAULT_DPDK_MBUFS, 1023, (1 << 24) - 1);
        let main_lcore = self.get(t, "main_lcore", Some(None), &|v| {
            int_in::<usize>(0, 1023)(v).map(Some)
        });
        let idle_sleep_us =
            self.int_in_or(t, "idle_sleep_us", DEFAULT_DPDK_IDLE_SLEEP_US, 0, 1_000_000);
        let log_level = self.get(
            t,
            "log_level",
            Some(DEFAULT_DPDK_LOG_LEVEL.to_string()),
            &dpdk_log_level,
        );
        Some(DpdkConfig {
            eal_args: eal_args?,
            hugepages: hugepages?,
            vdevs: vdevs?,
            memory_mb: memory_mb?,
            mbufs: mbufs?,
            main_lcore: main_lcore?,
            idle_sleep_us: idle_sleep_us?,
            log_level: log_level?,
        })
    }

    fn section_checkpoint(&mut self, t: &Tbl<'_>) -> Option<CheckpointConfig> {
        self.no_other_keys(
            t,
            &[
                "enabled",
                "segment_path",
                "slots",
                "mode",
                "fast_bytes",
                "slow_bytes",
                "interval_ms",
                "ack_after_commit",
                "replication_port",
                "upload_dir",
            ],
        );
        let enabled = self.get(t, "enabled", Some(true), &boolean);
        let segment_path = self.get(t, "segment_path", None, &absolute_path);
        let slots = self.get(t, "slots", None, &positive::<u32>);
        let mode = self.get(
            t,
            "mode",
            None,
            &choice(&[
                ("shared", SegmentMode::Shared),
                ("replicated", SegmentMode::Replicated),
            ]),
        );
        let fast_bytes = self.positive_or(t, "fast_bytes", DEFAULT_FAST_BYTES);
        let slow_bytes = self.positive_or(t, "slow_bytes", DEFAULT_SLOW_BYTES);
        let interval_ms = self.positive_or(t, "interval_ms", DEFAULT_CHECKPOINT_INTERVAL_MS);
        let ack_after_commit = self.get(t, "ack_after_commit", Some(false), &boolean);
        let upload_dir = self.get(t, "upload_dir", Some(None), &|v| absolute_path(v).map(Some));
        let replication_port =
            self.int_in_or(t, "replication_port", DEFAULT_REPLICATION_PORT, 1, 65535);
        // A slow connection is checkpointed more often (fewer bytes between
        // checkpoints) than a fast one: Fig. 6 trades checkpoint cost for
        // how much a takeover may have to replay.
        if let (Some(fast), Some(slow)) = (fast_bytes, slow_bytes) {
            if slow > fast {
                let line = self.key_line(t, "slow_bytes");
                self.problem(
                    line,
                    t.key_path("slow_bytes"),
                    format!("expected at most checkpoint.fast_bytes ({fast}), found {slow}"),
                );
                return None;
            }
        }
        Some(CheckpointConfig {
            enabled: enabled?,
            segment_path: segment_path?,
            slots: slots?,
            mode: mode?,
            fast_bytes: fast_bytes?,
            slow_bytes: slow_bytes?,
            interval_ms: interval_ms?,
            ack_after_commit: ack_after_commit?,
            replication_port: replication_port?,
            upload_dir: upload_dir?,
        })
    }

    fn section_failure(&mut self, t: &Tbl<'_>) -> Option<FailureConfig> {
        self.no_other_keys(t, &["heartbeat_interval_ms", "missed"]);
        let d = FailureConfig::default();
        let heartbeat_interval_ms =
            self.positive_or(t, "heartbeat_interval_ms", d.heartbeat_interval_ms);
        let missed = self.positive_or(t, "missed", d.missed);
        Some(FailureConfig {
            heartbeat_interval_ms: heartbeat_interval_ms?,
            missed: missed?,
        })
    }

    fn section_cache(&mut self, t: &Tbl<'_>) -> Option<CacheConfig> {
        self.no_other_keys(
            t,
            &[
                "origin",
                "memory_bytes",
                "disk_dir",
                "fetchers",
                "origin_timeout_ms",
            ],
        );
        let origin = self.get(t, "origin", None, &origin_url);
        let memory_bytes = self.get(t, "memory_bytes", None, &byte_size);
        let disk_dir = self.get(t, "disk_dir", Some(None), &|v| {
            non_empty(v).map(|s| Some(PathBuf::from(s)))
        });
        let fetchers = self.positive_or(t, "fetchers", DEFAULT_FETCHERS);
        let origin_timeout_ms = self.positive_or(t, "origin_timeout_ms", DEFAULT_ORIGIN_TIMEOUT_MS);
        Some(CacheConfig {
            origin: origin?,
            memory_bytes: memory_bytes?,
            disk_dir: disk_dir?,
            fetchers: fetchers?,
            origin_timeout_ms: origin_timeout_ms?,
        })
    }

    fn section_limits(&mut self, t: &Tbl<'_>) -> Option<LimitsConfig> {
        self.no_other_keys(
            t,
            &[
                "max_header_bytes",
                "max_request_line",
                "idle_timeout_ms",
                "request_timeout_ms",
                "max_connections",
                "max_upload_bytes",
            ],
        );
        let d = LimitsConfig::default();
        let max_header_bytes = self.positive_or(t, "max_header_bytes", d.max_header_bytes);
        let max_request_line = self.positive_or(t, "max_request_line", d.max_request_line);
        let idle_timeout_ms = self.positive_or(t, "idle_timeout_ms", d.idle_timeout_ms);
        let request_timeout_ms = self.positive_or(t, "request_timeout_ms", d.request_timeout_ms);
        let max_connections = self.positive_or(t, "max_connections", d.max_connections);
        let max_upload_bytes =
            self.get(t, "max_upload_bytes", Some(d.max_upload_bytes), &byte_size);
        Some(LimitsConfig {
            max_header_bytes: max_header_bytes?,
            max_request_line: max_request_line?,
            idle_timeout_ms: idle_timeout_ms?,
            request_timeout_ms: request_timeout_ms?,
            max_connections: max_connections?,
            max_upload_bytes: max_upload_bytes?,
        })
    }

    fn section_admin(&mut self, t: &Tbl<'_>) -> Option<AdminConfig> {
        self.no_other_keys(t, &["listen", "token"]);
        let listen = self.get(
            t,
            "listen",
            None,
            &parsed::<SocketAddr>("a socket address like 198.19.0.11:9090"),
        );
        let token = self.get(t, "token", None, &non_empty);
        Some(AdminConfig {
            listen: listen?,
            token: token?,
        })
    }
}

fn also_at(line: Option<usize>) -> String {
    match line {
        Some(l) => format!(" (first at line {l})"),
        None => String::new(),
    }
}

fn first_duplicate<T: PartialEq + Copy>(items: &[T]) -> Option<T> {
    items
        .iter()
        .enumerate()
        .find(|(i, x)| items.get(..*i).is_some_and(|before| before.contains(x)))
        .map(|(_, x)| *x)
}

/// How a value is named in "found …": its type, and for scalars the value.
fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("string {:?}", quote(s.value())),
        Value::Integer(i) => format!("integer {}", i.value()),
        Value::Float(f) => format!("float {}", f.value()),
        Value::Boolean(b) => format!("boolean {}", b.value()),
        Value::Datetime(d) => format!("datetime {}", d.value()),
        Value::Array(_) => "array".to_string(),
        Value::InlineTable(_) => "table".to_string(),
    }
}

fn describe_item(item: &Item) -> String {
    match item {
        Item::Value(v) => describe(v),
        Item::Table(_) => "table".to_string(),
        Item::ArrayOfTables(_) => "array of tables".to_string(),
        Item::None => "nothing".to_string(),
    }
}

/// A user's string cut to [`QUOTE_MAX`] characters for a message.
fn quote(s: &str) -> String {
    if s.chars().count() <= QUOTE_MAX {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(QUOTE_MAX).collect();
        cut.push('…');
        cut
    }
}

fn integer(v: &Value, expected: &str) -> Result<i64, String> {
    v.as_integer()
        .ok_or_else(|| format!("expected {expected}, found {}", describe(v)))
}

fn int_in<T: TryFrom<i64>>(lo: i64, hi: i64) -> impl Fn(&Value) -> Result<T, String> {
    move |v| {
        let expected = format!("an integer in {lo}..={hi}");
        let n = integer(v, &expected)?;
        if (lo..=hi).contains(&n) {
            T::try_from(n).map_err(|_| format!("expected {expected}, found integer {n}"))
        } else {
            Err(format!("expected {expected}, found integer {n}"))
        }
    }
}

fn positive<T: TryFrom<i64>>(v: &Value) -> Result<T, String> {
    let n = integer(v, "a positive integer")?;
    if n < 1 {
        return Err(format!("expected a positive integer, found integer {n}"));
    }
    T::try_from(n).map_err(|_| format!("expected a smaller positive integer, found integer {n}"))
}

fn non_negative<T: TryFrom<i64>>(v: &Value) -> Result<T, String> {
    let n = integer(v, "an integer >= 0")?;
    T::try_from(n).map_err(|_| format!("expected an integer >= 0, found integer {n}"))
}

fn boolean(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("expected true or false, found {}", describe(v)))
}

fn string(v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("expected a string, found {}", describe(v)))
}

fn non_empty(v: &Value) -> Result<String, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected a non-empty string, found {}", describe(v)))?;
    if s.trim().is_empty() {
        return Err(format!("expected a non-empty string, found string {:?}", s));
    }
    Ok(s.to_string())
}

/// A tracing `EnvFilter` directive list (`info`, `warn,baton=debug`). Only
/// the level after `target=` is checked: a bare word is a valid target, and
/// span/field filters (`[..]`, `{..}`) are left to tracing itself.
fn log_filter(v: &Value) -> Result<String, String> {
    const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];
    let s = non_empty(v)?;
    for directive in s.split(',').map(str::trim) {
        if directive.contains(['[', '{']) {
            continue;
        }
        if let Some((_, level)) = directive.rsplit_once('=') {
            let known = LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level.trim()))
                || matches!(level.trim(), "0" | "1" | "2" | "3" | "4" | "5");
            if !known {
                return Err(format!(
                    "expected a log filter like \"info\" or \"warn,baton=debug\" (levels: {}), found level {:?} in {:?}",
                    LEVELS.join(", "),
                    quote(level),
                    quote(&s)
                ));
            }
        }
    }
    Ok(s)
}

/// A string parsed with `FromStr`; `what` says what it should look like.
fn parsed<T: FromStr>(what: &'static str) -> impl Fn(&Value) -> Result<T, String> {
    move |v| {
        let s = v
            .as_str()
            .ok_or_else(|| format!("expected {what}, found {}", describe(v)))?;
        s.trim()
            .parse::<T>()
            .map_err(|_| format!("expected {what}, found string {:?}", quote(s)))
    }
}

fn choice<T: Copy>(options: &'static [(&'static str, T)]) -> impl Fn(&Value) -> Result<T, String> {
    move |v| {
        let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
        let expected = format!("one of {}", names.join(", "));
        let s = v
            .as_str()
            .ok_or_else(|| format!("expected {expected}, found {}", describe(v)))?;
        options
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, x)| *x)
            .ok_or_else(|| format!("expected {expected}, found string {:?}", quote(s)))
    }
}

/// Linux interface names: 1..=15 bytes, no `/`, `:` or whitespace, and
/// not `.` or `..` (the kernel's `dev_valid_name`).
/// An EAL log level name (`--log-level=notice`); per-component levels go
/// in `eal_args`.
fn dpdk_log_level(v: &Value) -> Result<String, String> {
    let expected = format!(
        "one of {}",
        DPDK_LOG_LEVELS
            .iter()
            .map(|l| format!("{l:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    match v.as_str() {
        Some(s) if DPDK_LOG_LEVELS.contains(&s) => Ok(s.to_string()),
        _ => Err(format!("expected {expected}, found {}", describe(v))),
    }
}

fn interface_name(v: &Value) -> Result<String, String> {
    let expected = "an interface name of 1 to 15 characters without '/', ':' or spaces";
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected {expected}, found {}", describe(v)))?;
    let bad = s.is_empty()
        || s.len() > MAX_INTERFACE_NAME
        || s == "."
        || s == ".."
        || s.chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(format!("expected {expected}, found string {:?}", quote(s)));
    }
    Ok(s.to_string())
}

/// A MAC the box may send from: a multicast (group) address, bit 0 of the
/// first octet (IEEE 802-2014 §8.2), or all zeros cannot be a source.
fn unicast_mac(v: &Value) -> Result<MacAddr, String> {
    let mac: MacAddr = parsed::<MacAddr>("a MAC address like 02:ba:70:00:00:01")(v)?;
    if mac.0[0] & 1 == 1 {
        return Err(format!(
            "expected a unicast MAC address, found multicast {mac}"
        ));
    }
    if mac.0 == [0; 6] {
        return Err("expected a unicast MAC address, found 00:00:00:00:00:00".to_string());
    }
    Ok(mac)
}

fn absolute_path(v: &Value) -> Result<PathBuf, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected an absolute path, found {}", describe(v)))?;
    // Every box and tool opens the segment by this path; a relative one
    // would depend on each process's working directory.
    if !s.starts_with('/') {
        return Err(format!(
            "expected an absolute path, found string {:?}",
            quote(s)
        ));
    }
    Ok(PathBuf::from(s))
}

fn origin_url(v: &Value) -> Result<String, String> {
    let s = v.as_str().ok_or_else(|| {
        format!(
            "expected an http://host[:port][/path] URL, found {}",
            describe(v)
        )
    })?;
    OriginUrl::parse(s).map_err(|e| e.0)?;
    Ok(s.to_string())
}

/// Hex-encoded cluster key of at least [`MIN_KEY_BYTES`] bytes. The
/// messages never quote the key: it is a secret.
fn hex_key(v: &Value) -> Result<Vec<u8>, String> {
    let min_digits = 2 * MIN_KEY_BYTES;
    let expected = format!("at least {min_digits} hex digits ({MIN_KEY_BYTES} bytes)");
    let Some(s) = v.as_str() else {
        return Err(format!(
            "expected a string of {expected}, found {}",
            v.type_name()
        ));
    };
    if let Some(pos) = s.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "expected {expected}, found a non-hex character at position {}",
            pos + 1
        ));
    }
    if s.len() < min_digits {
        return Err(format!("expected {expected}, found {} hex digits", s.len()));
    }
    if s.len() % 2 != 0 {
        return Err(format!(
            "expected an even number of hex digits (two per byte), found {}",
            s.len()
        ));
    }
    // All ASCII hex digits (checked above), so every 2-byte slice is a
    // valid `str` and parses.
    (0..s.len() / 2)
        .map(|i| {
            s.get(2 * i..2 * i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("expected {expected}"))
        })
        .collect()
}

/// `memory_bytes`: an integer, or a string with a unit suffix.
fn byte_size(v: &Value) -> Result<u64, String> {
    let expected = "a positive byte count: an integer or a string like \"512MiB\" (units B, K, M, G, T = 1000^n, KiB, MiB, GiB, TiB = 1024^n)";
    let n = match v {
        Value::Integer(i) => {
            let n = *i.value();
            u64::try_from(n).ok().filter(|&n| n > 0)
        }
        Value::String(s) => parse_size(s.value()),
        other => return Err(format!("expected {expected}, found {}", describe(other))),
    };
    n.ok_or_else(|| format!("expected {expected}, found {}", describe(v)))
}

/// Parses `"1GiB"`, `"512 MB"`, `"100000"`; `None` if malformed, zero or
/// overflowing.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let num: String = num.chars().filter(|&c| c != '_').collect();
    if num.is_empty() {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult).filter(|&b| b > 0)
}
