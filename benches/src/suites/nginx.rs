//! nginx as the reference server the suites compare Baton with: its
//! configuration, started and stopped inside a box namespace. It must not
//! know what the suites measure with it.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use baton_lab::driver::{self as lab};

use crate::suites::bench::{Bench, NGINX_PLAIN, NGINX_PROXY, VIP};

/// What nginx serves on one address.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Serve {
    /// The lab's objects from disk, on port 80.
    Plain,
    /// A `proxy_cache` of the origin, on port 80.
    Proxy,
    /// The lab's objects from disk over TLS on port 443, with the box's
    /// lab certificate (`boxN-cert.pem`, `boxN-key.pem` in the run state).
    Tls,
}

impl Bench {
    pub(crate) fn nginx_conf_path(&self, node: &str) -> PathBuf {
        self.lab.state_dir().join(format!("nginx-{node}.conf"))
    }

    /// Starts nginx in NODE's namespace serving each address of `listens`
    /// as it says (kernel addresses it adds to front0; `*` is every
    /// address).
    pub(crate) fn start_nginx(
        &self,
        node: &str,
        listens: &[(&str, Serve)],
        workers: u32,
    ) -> Result<u32> {
        let dir = self.lab.state_dir();
        for (addr, _) in listens {
            if *addr != "*" {
                self.lab.ip(
                    node,
                    &["addr", "add", &format!("{addr}/24"), "dev", "front0"],
                )?;
            }
        }
        let conf = nginx_conf(&dir, node, listens, workers);
        let path = self.nginx_conf_path(node);
        std::fs::write(&path, conf)?;
        std::fs::create_dir_all(dir.join(format!("nginx-{node}-cache")))?;
        self.lab
            .exec(node, &["nginx", "-c", &path.display().to_string()])?;
        let pid_path = dir.join(format!("nginx-{node}.pid"));
        let mut pid = None;
        lab::wait_for(Duration::from_secs(5), || {
            pid = std::fs::read_to_string(&pid_path)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            pid.is_some()
        });
        pid.with_context(|| format!("nginx in {node} wrote no pid file"))
    }

    pub(crate) fn stop_nginx(&self, node: &str, listens: &[&str]) {
        let path = self.nginx_conf_path(node);
        if path.exists() {
            let _ = self.lab.exec(
                node,
                &["nginx", "-c", &path.display().to_string(), "-s", "stop"],
            );
            let pid_path = self.lab.state_dir().join(format!("nginx-{node}.pid"));
            lab::wait_for(Duration::from_secs(5), || !pid_path.exists());
            let _ = std::fs::remove_file(&path);
        }
        for addr in listens {
            let _ = self.lab.ip(
                node,
                &["addr", "del", &format!("{addr}/24"), "dev", "front0"],
            );
        }
    }

    pub(crate) fn stop_nginx_all(&self) {
        for node in ["box2", "box3"] {
            self.stop_nginx(node, &[NGINX_PLAIN, NGINX_PROXY, VIP]);
        }
        self.unsilence_box2();
    }

    /// Removes the nftables table that silenced box2's front port for the
    /// reference failover (absent: nothing to do).
    pub(crate) fn unsilence_box2(&self) {
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.lab.ns("box2"),
                "nft",
                "delete",
                "table",
                "inet",
                "btbfail",
            ])
            .output();
    }
}

/// nginx configuration: `workers` worker processes (one, like Baton's one
/// dataplane worker, unless the 20000-file cap per process needs more; then
/// `reuseport` spreads the connections); `listens` = (address or `*`, what
/// it serves there).
pub(crate) fn nginx_conf(
    dir: &Path,
    node: &str,
    listens: &[(&str, Serve)],
    workers: u32,
) -> String {
    let reuse = if workers > 1 { " reuseport" } else { "" };
    let d = dir.display();
    let mut servers = String::new();
    for (addr, serve) in listens {
        let port = if *serve == Serve::Tls { 443 } else { 80 };
        let listen = if *addr == "*" {
            port.to_string()
        } else {
            format!("{addr}:{port}")
        };
        match serve {
            Serve::Proxy => servers.push_str(&format!(
                "  server {{\n    listen {listen} backlog=65535{reuse};\n    location / {{\n      proxy_pass http://198.19.0.2;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_cache bt;\n      proxy_cache_valid 200 1h;\n      proxy_max_temp_file_size 0;\n    }}\n  }}\n"
            )),
            Serve::Plain => servers.push_str(&format!(
                "  server {{\n    listen {listen} backlog=65535{reuse};\n    root {d}/objects;\n  }}\n"
            )),
            // Full handshakes unless the client resumes: no session cache
            // is configured (nginx's default), tickets stay on as in Baton.
            Serve::Tls => servers.push_str(&format!(
                "  server {{\n    listen {listen} ssl backlog=65535{reuse};\n    ssl_certificate {d}/{node}-cert.pem;\n    ssl_certificate_key {d}/{node}-key.pem;\n    ssl_protocols TLSv1.2 TLSv1.3;\n    root {d}/objects;\n  }}\n"
            )),
        }
    }
    format!(
        "# Written by baton-bench.\nuser root;\nworker_processes {workers};\nworker_rlimit_nofile 20000;\npid {d}/nginx-{node}.pid;\nerror_log {d}/nginx-{node}.err warn;\nevents {{\n  worker_connections 19500;\n  multi_accept on;\n}}\nhttp {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_timeout 300s;\n  keepalive_requests 100000000;\n  proxy_cache_path {d}/nginx-{node}-cache levels=1:2 keys_zone=bt:10m max_size=2g inactive=1h use_temp_path=off;\n{servers}}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_conf_serves_objects_and_proxies_the_origin() {
        let c = nginx_conf(
            Path::new("/run/baton-lab/btb"),
            "box2",
            &[
                ("198.18.0.62", Serve::Plain),
                ("198.18.0.63", Serve::Proxy),
                ("198.18.0.64", Serve::Tls),
            ],
            1,
        );
        assert!(c.contains(
            "listen 198.18.0.62:80 backlog=65535;\n    root /run/baton-lab/btb/objects;"
        ));
        assert!(c.contains("listen 198.18.0.63:80"));
        assert!(c.contains("proxy_pass http://198.19.0.2;"));
        assert!(c.contains("pid /run/baton-lab/btb/nginx-box2.pid;"));
        assert!(c.contains("worker_processes 1;"));
        assert!(c.contains(
            "listen 198.18.0.64:443 ssl backlog=65535;\n    ssl_certificate /run/baton-lab/btb/box2-cert.pem;"
        ));
        assert!(!c.contains("reuseport"));
        let many = nginx_conf(
            Path::new("/x"),
            "box2",
            &[("198.18.0.62", Serve::Plain)],
            16,
        );
        assert!(many.contains("worker_processes 16;"));
        assert!(many.contains("listen 198.18.0.62:80 backlog=65535 reuseport;"));
    }
}
