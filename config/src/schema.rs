//! How a table of the file is declared: once, with [`table!`], giving per
//! key its name, Rust type, doc line and [`Field`] rule (value rule plus
//! default). The model struct, the reader (unknown keys included), the
//! writer behind `Config::to_toml` and the key list the documentation tests
//! compare against are all derived from that one declaration.
//!
//! This module knows how a key is read, never which keys exist: those are
//! declared in `crate::tables`.

use toml_edit::{Array, Item, Value};

use crate::convert::ToToml;
use crate::read::{Checker, Tbl};

/// One declared key, for the documentation checks.
#[derive(Debug, Clone)]
pub(crate) struct KeyDoc {
    /// The key as written in the file.
    pub(crate) key: &'static str,
    /// Its doc comment in the model, one line per `///` line.
    pub(crate) doc: &'static str,
    /// The keys of the table it holds, when it holds one.
    pub(crate) nested: Option<Vec<KeyDoc>>,
}

/// `(dotted key, doc)` of `keys` and of every table they hold, in file
/// order; `prefix` is the dotted path of the table they belong to.
pub(crate) fn flatten(prefix: &str, keys: &[KeyDoc], out: &mut Vec<(String, &'static str)>) {
    for k in keys {
        let path = if prefix.is_empty() {
            k.key.to_string()
        } else {
            format!("{prefix}.{}", k.key)
        };
        out.push((path.clone(), k.doc));
        if let Some(nested) = &k.nested {
            flatten(&path, nested, out);
        }
    }
}

/// A table of the file, declared with [`table!`].
pub(crate) trait Table: Sized {
    /// Its keys in declaration order, which is also the order of the
    /// "expected one of" list and of the written file.
    fn keys() -> Vec<KeyDoc>;
    /// Reads the table; every problem is recorded in `c`.
    fn read(c: &mut Checker<'_>, t: &Tbl<'_>) -> Option<Self>;
    /// Writes every key (defaults included; `None` options left out).
    fn write(&self) -> toml_edit::Table;
}

/// How one key is read and written: the value rule and the default.
pub(crate) trait Field<T> {
    /// The key's value; `None` after recording a problem.
    fn read(&self, c: &mut Checker<'_>, t: &Tbl<'_>, key: &str) -> Option<T>;
    /// The item written for `v`; `None` leaves the key out.
    fn write(&self, v: &T) -> Option<Item>;
    /// The keys of the table this key holds, if it holds one.
    fn nested(&self) -> Option<Vec<KeyDoc>> {
        None
    }
}

/// A rule whose key may be left out: its value when it is.
pub(crate) trait Defaulted<T> {
    /// The value of the key when the file leaves it out.
    fn default_value(&self) -> T;
}

/// A required key with a scalar value rule.
pub(crate) struct Req<C>(C);

/// Required: `conv` judges the value.
pub(crate) fn req<T, C: Fn(&Value) -> Result<T, String>>(conv: C) -> Req<C> {
    Req(conv)
}

impl<T: ToToml, C: Fn(&Value) -> Result<T, String>> Field<T> for Req<C> {
    fn read(&self, c: &mut Checker<'_>, t: &Tbl<'_>, key: &str) -> Option<T> {
        c.get(t, key, None, &self.0)
    }
    fn write(&self, v: &T) -> Option<Item> {
        Some(Item::Value(v.to_toml()))
    }
}

/// A key with a default and a scalar value rule.
pub(crate) struct Or<T, C>(T, C);

/// Optional, `default` when left out; `conv` judges the value.
pub(crate) fn or<T, C: Fn(&Value) -> Result<T, String>>(default: T, conv: C) -> Or<T, C> {
    Or(default, conv)
}

impl<T: ToToml + Clone, C: Fn(&Value) -> Result<T, String>> Field<T> for Or<T, C> {
    fn read(&self, c: &mut Checker<'_>, t: &Tbl<'_>, key: &str) -> Option<T> {
        c.get(t, key, Some(self.0.clone()), &self.1)
    }
    fn write(&self, v: &T) -> Option<Item> {
        Some(Item::Value(v.to_toml()))
    }
}

impl<T: Clone, C> Defaulted<T> for Or<T, C> {
    fn default_value(&self) -> T {
        self.0.clone()
    }
}

/// A key that may be left out, read as `None` then.
pub(crate) struct Opt<C>(C);

/// Optional, `None` when left out; `conv` judges the value.
pub(crate) fn opt<T, C: Fn(&Value) -> Result<T, String>>(conv: C) -> Opt<C> {
    Opt(conv)
}

impl<T: ToToml, C: Fn(&Value) -> Result<T, String>> Field<Option<T>> for Opt<C> {
    fn read(&self, c: &mut Checker<'_>, t: &Tbl<'_>, key: &str) -> Option<Option<T>> {
        c.get(t, key, Some(None), &|v| (self.0)(v).map(Some))
    }
    fn write(&self, v: &Option<T>) -> Option<Item> {
        v.as_ref().map(|v| Item::Value(v.to_toml()))
    }
}

impl<T, C: Fn(&Value) -> Result<T, String>> Defaulted<Option<T>> for Opt<C> {
    fn default_value(&self) -> Option<T> {
        None
    }
}

/// An array key; each element judged by the rule, reported by its index.
pub(crate) struct List<C> {
    elem: C,
    required: bool,
}

/// A required array; `elem` judges each element.
pub(crate) fn list<T, C: Fn(&Value) -> Result<T, String>>(elem: C) -> List<C> {
    List {
        elem,
        required: true,
    }
}

/// An array that may be left out (empty then); `elem` judges each element.
pub(crate) fn list_or_empty<T, C: Fn(&Value) -> Result<T, String>>(elem: C) -> List<C> {
    List {
        elem,
        required: false,
    }
}

impl<T: ToToml, C: Fn(&Value) -> Result<T, String>> Field<Vec<T>> for List<C> {
    fn read(&self, c: &mut Checker<'_>, t: &Tbl<'_>, key: &str) -> Option<Vec<T>> {
        let default = (!self.required).then(Vec::new);
        c.list(t, key, default, &self.elem)
    }
    fn write(&self, v: &Vec<T>) -> Option<Item> {
        let mut a = Array::new();
        for x in v {
            a.push(x.to_toml());
        }
        Some(Item::Value(Value::Array(a)))
    }
}

impl<T, C: Fn(&Value) -> Result<T, String>> Defaulted<Vec<T>> for List<C> {
    fn default_value(&self) -> Vec<T> {
        Vec::new()
    }
}

/// A required sub-table.
pub(crate) struct Required;

impl<S: Table> Field<S> for Required {
    fn read(&self, c: &mut Checker<'_>, t: &Tbl<'_>, key: &str) -> Option<S> {
        c.table(t, key, true).and_then(|sub| S::read(c, &sub))
    }
    fn write(&self, v: &S) -> Option<Item> {
        Some(Item::Table(v.write()))
    }
    fn nested(&self) -> Option<Vec<KeyDoc>> {
        Some(S::keys())
    }
}

/// A sub-table that may be left out, every key defaulted then.
pub(crate) struct OrDefault;

impl<S: Table + Default> Field<S> for OrDefault {
    fn read(&self, c: &mut Checker<'_>, t: &Tbl<'_>, key: &str) -> Option<S> {
        match c.table(t, key, false) {
            Some(sub) => S::read(c, &sub),
            None => Some(S::default()),
        }
    }
    fn write(&self, v: &S) -> Option<Item> {
        Some(Item::Table(v.write()))
    }
    fn nested(&self) -> Option<Vec<KeyDoc>> {
        Some(S::keys())
    }
}

/// A sub-table that may be left out, read as `None` then.
pub(crate) struct Optional;

impl<S: Table> Field<Option<S>> for Optional {
    fn read(&self, c: &mut Checker<'_>, t: &Tbl<'_>, key: &str) -> Option<Option<S>> {
        match c.table(t, key, false) {
            Some(sub) => S::read(c, &sub).map(Some),
            None => Some(None),
        }
    }
    fn write(&self, v: &Option<S>) -> Option<Item> {
        v.as_ref().map(|s| Item::Table(s.write()))
    }
    fn nested(&self) -> Option<Vec<KeyDoc>> {
        Some(S::keys())
    }
}

/// Declares one table of the file: the public model struct, and its
/// [`Table`] implementation derived from the same key list.
///
/// ```text
/// table! {
///     /// `[failure]`: heartbeat-based failure detection.
///     #[derive(Debug, Clone, Copy, PartialEq, Eq)]
///     pub struct FailureConfig: Default {
///         /// Heartbeat period, milliseconds (> 0).
///         heartbeat_interval_ms: u64 = or(DEFAULT_HEARTBEAT_INTERVAL_MS, positive),
///     }
///     check = failure_rules;   // optional: rules between keys
/// }
/// ```
///
/// A field named unlike its key says `field as "key"`. `: Default` derives
/// `Default` from the rules (it only compiles when every key has one). The
/// reader first reads every key into a `Parts` struct (one `Option` per
/// key), then runs the `check` function, `fn(&mut Checker, &Tbl, &mut
/// Parts) -> bool`, which sees whichever keys came out so rules between keys
/// are still judged when an unrelated key is wrong, then builds the table
/// only if every key came out and the check passed.
macro_rules! table {
    (
        $(#[$meta:meta])*
        pub struct $name:ident: Default {
            $(
                $(#[doc = $doc:literal])*
                $field:ident $(as $key:literal)? : $ty:ty = $rule:expr,
            )*
        }
        $(check = $check:path;)?
    ) => {
        table! {
            $(#[$meta])*
            pub struct $name {
                $( $(#[doc = $doc])* $field $(as $key)? : $ty = $rule, )*
            }
            $(check = $check;)?
        }
        impl Default for $name {
            fn default() -> Self {
                $name {
                    $( $field: $crate::schema::Defaulted::<$ty>::default_value(&$rule), )*
                }
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident $(as $key:literal)? : $ty:ty = $rule:expr,
            )*
        }
        $(check = $check:path;)?
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        /// The keys of the table as read, before the rules between keys
        /// and before the table is built: `None` where a problem was
        /// recorded.
        pub(crate) struct Parts {
            $( pub(crate) $field: Option<$ty>, )*
        }

        impl $name {
            /// The keys in file order, for the "expected one of" list.
            const KEYS: &'static [&'static str] = &[$( table!(@key $field $($key)?) ),*];

            /// Reads every key (reporting unknown ones) without building.
            pub(crate) fn read_parts(
                c: &mut $crate::read::Checker<'_>,
                t: &$crate::read::Tbl<'_>,
            ) -> Parts {
                c.no_other_keys(t, Self::KEYS);
                Parts {
                    $( $field: $crate::schema::Field::<$ty>::read(
                        &$rule, c, t, table!(@key $field $($key)?)), )*
                }
            }

            /// The table, if every key came out.
            pub(crate) fn build(parts: Parts) -> Option<Self> {
                Some($name { $( $field: parts.$field?, )* })
            }
        }

        impl $crate::schema::Table for $name {
            fn keys() -> Vec<$crate::schema::KeyDoc> {
                vec![$( $crate::schema::KeyDoc {
                    key: table!(@key $field $($key)?),
                    doc: concat!($($doc, "\n"),*),
                    nested: $crate::schema::Field::<$ty>::nested(&$rule),
                } ),*]
            }

            fn read(c: &mut $crate::read::Checker<'_>, t: &$crate::read::Tbl<'_>) -> Option<Self> {
                #[allow(unused_mut)] // only a `check` mutates the parts
                let mut parts = Self::read_parts(c, t);
                let ok = true $( && $check(c, t, &mut parts) )?;
                if ok {
                    Self::build(parts)
                } else {
                    None
                }
            }

            fn write(&self) -> toml_edit::Table {
                let mut t = toml_edit::Table::new();
                $(
                    if let Some(item) = $crate::schema::Field::<$ty>::write(&$rule, &self.$field) {
                        t.insert(table!(@key $field $($key)?), item);
                    }
                )*
                t
            }
        }
    };
    (@key $field:ident) => { stringify!($field) };
    (@key $field:ident $key:literal) => { $key };
}
pub(crate) use table;
