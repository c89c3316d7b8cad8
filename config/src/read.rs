//! Spans and problem reporting: walks a span-keeping TOML document and
//! records every problem with its line and dotted key.
//!
//! The document is parsed with `toml_edit::ImDocument`, which keeps the byte
//! span of every key, value and table header, so each problem can name its
//! line. A [`Checker`] collects problems instead of stopping at the first,
//! so one bad key never hides another. This module knows no table or key
//! of the schema: those are declared in `crate::tables`.

use std::ops::Range;

use toml_edit::{ImDocument, Item, TableLike, Value};

use crate::error::{ConfigError, Problem};

/// Longest slice of a user's string quoted back in a message.
const QUOTE_MAX: usize = 40;

/// Parses `text` and reads it with `read` from the root table; `file`
/// names it in messages. Problems come back in line order.
pub(crate) fn run<T>(
    text: &str,
    file: &str,
    read: impl FnOnce(&mut Checker<'_>, &Tbl<'_>) -> Option<T>,
) -> Result<T, ConfigError> {
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
    match read(&mut c, &root) {
        Some(value) if c.problems.is_empty() => Ok(value),
        _ => {
            let mut problems = c.problems;
            if problems.is_empty() {
                // Every `None` comes with a recorded problem; this is a
                // guard against a future table forgetting one.
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
pub(crate) struct Tbl<'d> {
    /// The table itself (a `[header]` table, an inline table, …).
    pub(crate) t: &'d dyn TableLike,
    /// Dotted path, e.g. `cluster.members[1]`; empty for the root.
    pub(crate) path: String,
    /// Line of its header, if it has one.
    pub(crate) line: Option<usize>,
}

impl Tbl<'_> {
    /// Dotted path of `key` in this table.
    pub(crate) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

/// Collects the problems of one file while its tables are read.
pub(crate) struct Checker<'s> {
    text: &'s str,
    problems: Vec<Problem>,
}

/// A converter from one TOML value to a Rust value, or the message saying
/// what was expected instead.
pub(crate) type Conv<'a, T> = &'a dyn Fn(&Value) -> Result<T, String>;

impl Checker<'_> {
    /// Line of a span, if it has one.
    pub(crate) fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        Some(line_at(self.text, span?.start))
    }

    /// Records one problem.
    pub(crate) fn problem(&mut self, line: Option<usize>, key: String, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            key,
            message: message.into(),
        });
    }

    /// Line of `key` in `t`: the key itself, else its value, else the table.
    pub(crate) fn key_line(&self, t: &Tbl<'_>, key: &str) -> Option<usize> {
        t.t.key(key)
            .and_then(|k| self.line(k.span()))
            .or_else(|| t.t.get(key).and_then(|i| self.line(i.span())))
            .or(t.line)
    }

    /// Reports every key of `t` not in `allowed`.
    pub(crate) fn no_other_keys(&mut self, t: &Tbl<'_>, allowed: &[&str]) {
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
    pub(crate) fn table<'d>(
        &mut self,
        parent: &Tbl<'d>,
        name: &str,
        required: bool,
    ) -> Option<Tbl<'d>> {
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

    /// The elements of the array of tables `item` (the value of `key` in
    /// `t`): `[[header]]` tables or an inline array of inline tables. An
    /// element that is not a table is reported and left out, and the flag
    /// says whether every element was one; `None` when `item` is no array
    /// of tables at all (reported).
    pub(crate) fn tables<'d>(
        &mut self,
        t: &Tbl<'d>,
        key: &str,
        item: &'d Item,
        header: &str,
    ) -> Option<(Vec<Tbl<'d>>, bool)> {
        let path = t.key_path(key);
        let mut tables: Vec<Tbl<'d>> = Vec::new();
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
                let line = self.key_line(t, key);
                self.problem(
                    line,
                    path,
                    format!(
                        "expected an array of tables ([[{header}]]), found {}",
                        describe_item(other)
                    ),
                );
                return None;
            }
        }
        Some((tables, ok))
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
    pub(crate) fn get<T>(
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

    /// An array value of `key`, each element converted by `elem`; every bad
    /// element is reported with its own index and line.
    pub(crate) fn list<T>(
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
}

/// How a value is named in "found …": its type, and for scalars the value.
pub(crate) fn describe(v: &Value) -> String {
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

/// As [`describe`], for any item (tables and arrays of tables too).
pub(crate) fn describe_item(item: &Item) -> String {
    match item {
        Item::Value(v) => describe(v),
        Item::Table(_) => "table".to_string(),
        Item::ArrayOfTables(_) => "array of tables".to_string(),
        Item::None => "nothing".to_string(),
    }
}

/// A user's string cut to [`QUOTE_MAX`] characters for a message.
pub(crate) fn quote(s: &str) -> String {
    if s.chars().count() <= QUOTE_MAX {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(QUOTE_MAX).collect();
        cut.push('…');
        cut
    }
}

/// " (first at line N)" for a duplicate's message, or nothing.
pub(crate) fn also_at(line: Option<usize>) -> String {
    match line {
        Some(l) => format!(" (first at line {l})"),
        None => String::new(),
    }
}

/// The first element that appears twice, if any.
pub(crate) fn first_duplicate<T: PartialEq + Copy>(items: &[T]) -> Option<T> {
    items
        .iter()
        .enumerate()
        .find(|(i, x)| items.get(..*i).is_some_and(|before| before.contains(x)))
        .map(|(_, x)| *x)
}
