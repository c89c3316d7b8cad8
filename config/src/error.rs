//! What went wrong with a configuration file, one [`Problem`] per mistake.

use std::fmt;

/// One mistake in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the mistake, when it has one (a missing table has none).
    pub line: Option<usize>,
    /// Dotted path of the key or table concerned, e.g. `dataplane.workers`
    /// or `cluster.members[1].id`; `syntax` for unparseable TOML and `file`
    /// for a file that cannot be read.
    pub key: String,
    /// What was expected and what was found.
    pub message: String,
}

/// Every problem found in one configuration file.
///
/// `Display` prints one line per problem, sorted by line:
/// `box1.toml:12: dataplane.workers: expected a positive integer, found string "two"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.file, .problems))]
pub struct ConfigError {
    /// The file name used in messages (the `source` given to [`crate::parse`]).
    pub file: String,
    /// All problems, in line order; never empty.
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// An error with a single problem.
    pub fn single(file: &str, line: Option<usize>, key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            problems: vec![Problem {
                line,
                key: key.to_string(),
                message: message.into(),
            }],
        }
    }
}

fn render(file: &str, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&p.display_in(file).to_string());
    }
    out
}

impl Problem {
    /// Formats this problem as one line, prefixed with `file`.
    pub fn display_in<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        struct Line<'a>(&'a Problem, &'a str);
        impl fmt::Display for Line<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let Line(p, file) = self;
                match p.line {
                    Some(n) => write!(f, "{file}:{n}: ")?,
                    None => write!(f, "{file}: ")?,
                }
                if !p.key.is_empty() {
                    write!(f, "{}: ", p.key)?;
                }
                // One problem, one line: a message must never break the
                // line-per-problem contract of `check-config`.
                for c in p.message.chars() {
                    match c {
                        '\n' | '\r' => f.write_str(" ")?,
                        c => write!(f, "{c}")?,
                    }
                }
                Ok(())
            }
        }
        Line(self, file)
    }
}
