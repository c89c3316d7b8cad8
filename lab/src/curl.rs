//! The curl command lines that the demo and the end-to-end tests run in the
//! client namespace, built in one place so that what the demo shows is what
//! the tests check. It knows curl's flags, not the lab's processes.

/// A download as LAB.md's canonical check runs it: silent but for errors,
/// at most `max_time` seconds, at `rate` (curl's `--limit-rate`, e.g. `5M`)
/// so a kill lands mid-transfer, into `out`.
#[derive(Debug, Clone)]
pub struct Download<'a> {
    /// The URL, e.g. `http://198.18.0.11/50M.bin`.
    pub url: &'a str,
    /// Where the body goes.
    pub out: &'a str,
    /// curl's `--limit-rate`; `None` for full speed.
    pub rate: Option<&'a str>,
    /// curl's `--max-time`, seconds.
    pub max_time: u32,
    /// More curl options, before the URL (`--cacert FILE`, `--tlsv1.2`).
    pub extra: &'a [&'a str],
}

impl<'a> Download<'a> {
    /// A download of `url` into `out`, with the tests' 120 s bound.
    pub fn new(url: &'a str, out: &'a str) -> Download<'a> {
        Download {
            url,
            out,
            rate: None,
            max_time: 120,
            extra: &[],
        }
    }

    /// The same download with more curl options.
    pub fn with_args(mut self, extra: &'a [&'a str]) -> Download<'a> {
        self.extra = extra;
        self
    }

    /// The same download at `rate`.
    pub fn limit_rate(mut self, rate: &'a str) -> Download<'a> {
        self.rate = Some(rate);
        self
    }

    /// `curl -sS --max-time T [--limit-rate R] [EXTRA…] -o OUT URL`,
    /// program first.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![
            "curl".to_string(),
            "-sS".into(),
            "--max-time".into(),
            self.max_time.to_string(),
        ];
        if let Some(rate) = self.rate {
            argv.extend(["--limit-rate".to_string(), rate.to_string()]);
        }
        argv.extend(self.extra.iter().map(|a| a.to_string()));
        argv.extend(["-o".to_string(), self.out.to_string(), self.url.to_string()]);
        argv
    }
}

/// The URL of `path` (starting with `/`) on box `n`'s service address.
pub fn box_url(n: u8, path: &str) -> String {
    format!("http://{}{path}", crate::names::box_service_addr(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_download_is_rate_limited_and_bounded() {
        let d = Download::new("http://198.18.0.11/50M.bin", "/tmp/o").limit_rate("5M");
        assert_eq!(
            d.argv().join(" "),
            "curl -sS --max-time 120 --limit-rate 5M -o /tmp/o http://198.18.0.11/50M.bin"
        );
    }

    #[test]
    fn box_urls_use_the_service_addresses_of_lab_md() {
        assert_eq!(box_url(1, "/1M.bin"), "http://198.18.0.11/1M.bin");
        assert_eq!(box_url(3, "/"), "http://198.18.0.13/");
    }
}
