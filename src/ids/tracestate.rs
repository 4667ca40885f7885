//! Owns the W3C Trace Context (Level 2) `tracestate` header: member syntax and limits,
//! the allocation-free validated view [`TraceStateRef`], the editable [`TraceState`]
//! (updated or new members go left-most, at most 32 members), and [`TracestateError`].
//!
//! Rules: at most 32 list-members; key `[a-z0-9][a-z0-9_\-*/@]{0,255}`; value 1 to 256
//! printable ASCII characters without `,` and `=`, not ending in a space; keys are unique.
//! Empty and whitespace-only members are allowed and ignored. Several `tracestate`
//! headers form one list, joined with `,`. An invalid tracestate is dropped whole; it
//! never invalidates the traceparent.

use crate::ids::hex::{char_at, snippet, split_byte, split_once_byte, trim_ows};

/// Most list-members a tracestate may hold.
pub const MAX_MEMBERS: usize = 32;
/// Longest key.
pub const MAX_KEY_LEN: usize = 256;
/// Longest value.
pub const MAX_VALUE_LEN: usize = 256;

/// What is wrong with a tracestate header or one of its members.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TracestateError {
    /// More than 32 list-members.
    #[error("tracestate: has more than 32 list-members (found {found} so far)")]
    TooManyMembers {
        /// Members counted when the limit was passed.
        found: usize,
    },
    /// A member without `=`.
    #[error("tracestate: list-member {member} {text:?} has no '='")]
    MissingEquals {
        /// 1-based member position.
        member: usize,
        /// The member (shortened).
        text: String,
    },
    /// `=value` with nothing before it.
    #[error("tracestate: list-member {member} has an empty key")]
    KeyEmpty {
        /// 1-based member position.
        member: usize,
    },
    /// Key over 256 characters.
    #[error("tracestate: key {key:?} is {len} characters long, at most 256 are allowed")]
    KeyTooLong {
        /// The key (shortened).
        key: String,
        /// Its length.
        len: usize,
    },
    /// A key character outside the allowed set.
    #[error(
        "tracestate: key {key:?} has {found:?} at index {index}; keys are [a-z0-9][a-z0-9_-*/@]*"
    )]
    KeyChar {
        /// The key (shortened).
        key: String,
        /// The character.
        found: char,
        /// Its byte index in the key.
        index: usize,
    },
    /// `key=` with no value.
    #[error("tracestate: value of key {key:?} is empty")]
    ValueEmpty {
        /// The key.
        key: String,
    },
    /// Value over 256 characters.
    #[error("tracestate: value of key {key:?} is {len} characters long, at most 256 are allowed")]
    ValueTooLong {
        /// The key.
        key: String,
        /// The value's length.
        len: usize,
    },
    /// A value character outside printable ASCII, or `,` / `=`.
    #[error(
        "tracestate: value of key {key:?} has {found:?} at index {index}; values are printable ASCII without ',' and '='"
    )]
    ValueChar {
        /// The key.
        key: String,
        /// The character.
        found: char,
        /// Its byte index in the value.
        index: usize,
    },
    /// A value ending in a space.
    #[error("tracestate: value of key {key:?} ends with a space")]
    ValueTrailingSpace {
        /// The key.
        key: String,
    },
    /// The same key twice.
    #[error("tracestate: key {key:?} appears more than once")]
    DuplicateKey {
        /// The key.
        key: String,
    },
}

/// Checks one key.
///
/// # Errors
/// [`TracestateError::KeyEmpty`] (as member 0), [`TracestateError::KeyTooLong`] or
/// [`TracestateError::KeyChar`].
pub fn validate_key(key: &str) -> Result<(), TracestateError> {
    check_key(key, 0)
}

fn check_key(key: &str, member: usize) -> Result<(), TracestateError> {
    let b = key.as_bytes();
    if b.is_empty() {
        return Err(TracestateError::KeyEmpty { member });
    }
    let bad = |index: usize| TracestateError::KeyChar {
        key: snippet(key),
        found: char_at(key, index),
        index,
    };
    if !(b[0].is_ascii_lowercase() || b[0].is_ascii_digit()) {
        return Err(bad(0));
    }
    if let Some(i) = b[1..].iter().position(|&c| {
        !(c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@'))
    }) {
        return Err(bad(i + 1));
    }
    if b.len() > MAX_KEY_LEN {
        return Err(TracestateError::KeyTooLong {
            key: snippet(key),
            len: b.len(),
        });
    }
    Ok(())
}

/// Bytes allowed in a value: printable ASCII except `,` and `=`.
const VALUE_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0x20;
    while c <= 0x7e {
        t[c] = c != b',' as usize && c != b'=' as usize;
        c += 1;
    }
    t
};

/// Checks one value for key `key`.
///
/// # Errors
/// [`TracestateError::ValueEmpty`], [`TracestateError::ValueChar`],
/// [`TracestateError::ValueTrailingSpace`] or [`TracestateError::ValueTooLong`].
pub fn validate_value(key: &str, value: &str) -> Result<(), TracestateError> {
    let b = value.as_bytes();
    if b.is_empty() {
        return Err(TracestateError::ValueEmpty { key: snippet(key) });
    }
    if let Some(index) = b.iter().position(|&c| !VALUE_CHARS[usize::from(c)]) {
        return Err(TracestateError::ValueChar {
            key: snippet(key),
            found: char_at(value, index),
            index,
        });
    }
    if b.len() > MAX_VALUE_LEN {
        return Err(TracestateError::ValueTooLong {
            key: snippet(key),
            len: b.len(),
        });
    }
    if b.last() == Some(&b' ') {
        return Err(TracestateError::ValueTrailingSpace { key: snippet(key) });
    }
    Ok(())
}

/// The non-empty members of a raw list, trimmed, as `(position, text)`.
fn raw_members(s: &str) -> impl Iterator<Item = (usize, &str)> {
    split_byte(s, b',')
        .map(trim_ows)
        .filter(|m| !m.is_empty())
        .enumerate()
        .map(|(i, m)| (i + 1, m))
}

/// A validated tracestate list borrowed from the header value. `Copy`, no heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceStateRef<'a>(&'a str);

impl<'a> TraceStateRef<'a> {
    /// Validates a whole tracestate value (one header, or several joined with `,`).
    ///
    /// # Errors
    /// The first [`TracestateError`] found, in list order.
    pub fn parse(s: &'a str) -> Result<Self, TracestateError> {
        Self::parse_finding(s, []).map(|(ts, _)| ts)
    }

    /// Validates like [`TraceStateRef::parse`] and, in the same pass, returns the values
    /// of `keys`.
    ///
    /// # Errors
    /// The first [`TracestateError`] found, in list order.
    pub fn parse_finding<const N: usize>(
        s: &'a str,
        keys: [&str; N],
    ) -> Result<(Self, [Option<&'a str>; N]), TracestateError> {
        let mut found = [None; N];
        for (member, text) in raw_members(s) {
            if member > MAX_MEMBERS {
                return Err(TracestateError::TooManyMembers { found: member });
            }
            let Some((key, value)) = split_once_byte(text, b'=') else {
                return Err(TracestateError::MissingEquals {
                    member,
                    text: snippet(text),
                });
            };
            check_key(key, member)?;
            validate_value(key, value)?;
            // At most 32 members, so rescanning the earlier ones stays cheap and needs
            // no storage.
            let duplicate = raw_members(s)
                .take(member - 1)
                .any(|(_, earlier)| split_once_byte(earlier, b'=').map(|(k, _)| k) == Some(key));
            if duplicate {
                return Err(TracestateError::DuplicateKey { key: snippet(key) });
            }
            if let Some(i) = keys.iter().position(|k| *k == key) {
                found[i] = Some(value);
            }
        }
        Ok((Self(s), found))
    }

    /// The members in order, as `(key, value)`.
    pub fn members(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        raw_members(self.0).filter_map(|(_, m)| split_once_byte(m, b'='))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.members().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members().count()
    }

    /// True when the list has no member.
    pub fn is_empty(&self) -> bool {
        self.members().next().is_none()
    }

    /// The raw value as received.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// An editable tracestate list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceState {
    members: Vec<(String, String)>,
}

impl TraceState {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses and validates a tracestate value.
    ///
    /// # Errors
    /// See [`TraceStateRef::parse`].
    pub fn parse(s: &str) -> Result<Self, TracestateError> {
        Ok(Self::from_ref(TraceStateRef::parse(s)?))
    }

    /// Owned copy of a validated list.
    pub fn from_ref(r: TraceStateRef<'_>) -> Self {
        Self {
            members: r
                .members()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` to `value` and moves it left-most, as W3C requires for updated and new
    /// members. When the list then holds more than 32 members, the right-most ones are
    /// dropped; their number is returned.
    ///
    /// # Errors
    /// [`TracestateError`] if the key or value is invalid; the list is then unchanged.
    pub fn upsert(&mut self, key: &str, value: &str) -> Result<usize, TracestateError> {
        validate_key(key)?;
        validate_value(key, value)?;
        self.members.retain(|(k, _)| k != key);
        self.members.insert(0, (key.to_owned(), value.to_owned()));
        let dropped = self.members.len().saturating_sub(MAX_MEMBERS);
        self.members.truncate(MAX_MEMBERS);
        Ok(dropped)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let pos = self.members.iter().position(|(k, _)| k == key)?;
        Some(self.members.remove(pos).1)
    }

    /// The members in order.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when empty (an empty tracestate header should not be sent).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Appends the header value: members joined by `,` without spaces.
    pub fn write(&self, out: &mut String) {
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
    }

    /// The header value.
    pub fn to_header(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }
}

#[cfg(test)]
mod tests;
