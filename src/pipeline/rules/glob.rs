//! Shell-style globs for route conditions, compiled once at load.

use std::fmt;

/// A shell-style pattern: `*` is any run of characters, `?` exactly one, `\` makes the
/// next character literal. Compiled to a prefix/suffix/contains test when it can be.
#[derive(Debug, Clone)]
pub struct Glob {
    form: GlobForm,
    text: Box<str>,
}

#[derive(Debug, Clone)]
enum GlobForm {
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Contains(Box<str>),
    Any,
    General(Box<[GlobToken]>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GlobToken {
    Star,
    One,
    Char(char),
}

impl Glob {
    /// Compiles `pattern`.
    ///
    /// # Errors
    /// A pattern that ends in a lone `\`.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' if tokens.last() == Some(&GlobToken::Star) => continue,
                '*' => GlobToken::Star,
                '?' => GlobToken::One,
                '\\' => match chars.next() {
                    Some(c) => GlobToken::Char(c),
                    None => return Err(format!("glob `{pattern}` ends in a lone `\\`")),
                },
                c => GlobToken::Char(c),
            });
        }
        let literal = |t: &[GlobToken]| -> Option<Box<str>> {
            t.iter()
                .map(|t| match t {
                    GlobToken::Char(c) => Some(*c),
                    _ => None,
                })
                .collect::<Option<String>>()
                .map(String::into_boxed_str)
        };
        let starts = tokens.first() == Some(&GlobToken::Star);
        let ends = tokens.len() > 1 && tokens.last() == Some(&GlobToken::Star);
        let inner = &tokens[usize::from(starts)..tokens.len() - usize::from(ends)];
        let form = if tokens == [GlobToken::Star] {
            GlobForm::Any
        } else {
            match (starts, ends, literal(inner)) {
                (false, false, Some(s)) => GlobForm::Exact(s),
                (false, true, Some(s)) => GlobForm::Prefix(s),
                (true, false, Some(s)) => GlobForm::Suffix(s),
                (true, true, Some(s)) => GlobForm::Contains(s),
                _ => GlobForm::General(tokens.into_boxed_slice()),
            }
        };
        Ok(Self {
            form,
            text: pattern.into(),
        })
    }

    /// Whether `s` matches the whole pattern.
    #[must_use]
    pub fn matches(&self, s: &str) -> bool {
        match &self.form {
            GlobForm::Exact(p) => s == &**p,
            GlobForm::Prefix(p) => s.starts_with(&**p),
            GlobForm::Suffix(p) => s.ends_with(&**p),
            GlobForm::Contains(p) => s.contains(&**p),
            GlobForm::Any => true,
            GlobForm::General(t) => wildcard(t, s),
        }
    }
}

/// Wildcard matching with one backtracking point (the last `*`), linear in practice.
fn wildcard(pattern: &[GlobToken], s: &str) -> bool {
    let (mut p, mut i) = (0, 0);
    // After a `*`: the pattern position behind it and where its run ends in `s`.
    let mut resume: Option<(usize, usize)> = None;
    loop {
        let next = s[i..].chars().next();
        let step = match (pattern.get(p), next) {
            (Some(GlobToken::Star), _) => {
                resume = Some((p + 1, i));
                p += 1;
                continue;
            }
            (Some(GlobToken::One), Some(c)) => Some(c),
            (Some(GlobToken::Char(want)), Some(c)) if *want == c => Some(c),
            (None, None) => return true,
            _ => None,
        };
        if let Some(c) = step {
            p += 1;
            i += c.len_utf8();
            continue;
        }
        // Mismatch: let the last `*` swallow one more character, or fail.
        let Some((after_star, run_end)) = resume else {
            return false;
        };
        let Some(c) = s[run_end..].chars().next() else {
            return false;
        };
        resume = Some((after_star, run_end + c.len_utf8()));
        p = after_star;
        i = run_end + c.len_utf8();
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
