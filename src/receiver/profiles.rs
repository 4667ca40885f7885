//! Checks OTLP profiles (1.10) one at a time against their request's dictionary, so a
//! bad profile is rejected in `partial_success` and never reaches an exporter, and
//! the others go through.
//!
//! A profile is valid when it has a sample type and every index it uses, directly or
//! through the stacks, locations, functions, mappings, attributes and links it
//! references, points into the dictionary's tables; and each sample has values or
//! timestamps (the same number of each when it has both). Dictionary entries no
//! profile uses are not looked at. Stacks and locations are checked once per request.

use std::fmt::Write as _;

use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::profiles::v1development::{Profile, ProfilesDictionary};

/// The outcome of checking a request profile by profile.
#[derive(Debug, Default)]
pub struct SanitizedProfiles {
    /// The request without the rejected profiles (and without emptied scopes and
    /// resources); the dictionary is kept whole.
    pub request: ExportProfilesServiceRequest,
    pub accepted: usize,
    pub rejected: usize,
    /// The first few problems, for `partial_success`.
    pub message: String,
}

const MAX_REPORTED: usize = 5;

/// Removes invalid profiles one at a time.
#[must_use]
pub fn sanitize_profiles(mut request: ExportProfilesServiceRequest) -> SanitizedProfiles {
    let mut out = SanitizedProfiles::default();
    let mut checker = request.dictionary.as_ref().map(Checker::new);
    for (ri, rp) in request.resource_profiles.iter_mut().enumerate() {
        for (si, sp) in rp.scope_profiles.iter_mut().enumerate() {
            let mut pi = 0;
            sp.profiles.retain(|p| {
                let here = pi;
                pi += 1;
                let verdict = match checker.as_mut() {
                    Some(c) => c.profile(p),
                    None => Err("the request has no dictionary".to_owned()),
                };
                match verdict {
                    Ok(()) => true,
                    Err(text) => {
                        if out.rejected < MAX_REPORTED {
                            let sep = if out.rejected == 0 { "" } else { "; " };
                            let _ = write!(
                                out.message,
                                "{sep}resource_profiles[{ri}].scope_profiles[{si}].profiles[{here}]: {text}"
                            );
                        }
                        out.rejected += 1;
                        false
                    }
                }
            });
            out.accepted += sp.profiles.len();
        }
        rp.scope_profiles.retain(|s| !s.profiles.is_empty());
    }
    request
        .resource_profiles
        .retain(|r| !r.scope_profiles.is_empty());
    if out.rejected > 0 {
        let more = out.rejected.saturating_sub(MAX_REPORTED);
        let tail = if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        };
        out.message = format!(
            "rejected {} invalid profile(s): {}{tail}",
            out.rejected, out.message
        );
    }
    out.request = request;
    out
}

/// Index checks against one dictionary, remembering stacks and locations seen.
struct Checker<'d> {
    d: &'d ProfilesDictionary,
    /// Per stack / location: 0 unknown, 1 valid, 2 invalid.
    stacks: Vec<u8>,
    locations: Vec<u8>,
}

fn index(i: i32, len: usize, what: &str) -> Result<usize, String> {
    usize::try_from(i)
        .ok()
        .filter(|&u| u < len)
        .ok_or_else(|| format!("{what} {i} is out of range (the table has {len} entries)"))
}

impl<'d> Checker<'d> {
    fn new(d: &'d ProfilesDictionary) -> Self {
        Self {
            d,
            stacks: vec![0; d.stack_table.len()],
            locations: vec![0; d.location_table.len()],
        }
    }

    fn string(&self, i: i32, what: &str) -> Result<(), String> {
        index(i, self.d.string_table.len(), what).map(|_| ())
    }

    fn attribute(&self, i: i32) -> Result<(), String> {
        let a = &self.d.attribute_table[index(i, self.d.attribute_table.len(), "attribute index")?];
        self.string(a.key_strindex, "attribute key_strindex")?;
        self.string(a.unit_strindex, "attribute unit_strindex")
    }

    fn profile(&mut self, p: &Profile) -> Result<(), String> {
        let st = p.sample_type.as_ref().ok_or("sample_type is missing")?;
        self.string(st.type_strindex, "sample_type.type_strindex")?;
        self.string(st.unit_strindex, "sample_type.unit_strindex")?;
        if let Some(pt) = &p.period_type {
            self.string(pt.type_strindex, "period_type.type_strindex")?;
            self.string(pt.unit_strindex, "period_type.unit_strindex")?;
        }
        for &a in &p.attribute_indices {
            self.attribute(a)?;
        }
        for (n, s) in p.samples.iter().enumerate() {
            let at = |e: String| format!("samples[{n}]: {e}");
            if s.values.is_empty() && s.timestamps_unix_nano.is_empty() {
                return Err(at("has neither values nor timestamps".to_owned()));
            }
            if !s.values.is_empty()
                && !s.timestamps_unix_nano.is_empty()
                && s.values.len() != s.timestamps_unix_nano.len()
            {
                return Err(at("values and timestamps differ in length".to_owned()));
            }
            self.stack(s.stack_index).map_err(at)?;
            for &a in &s.attribute_indices {
                self.attribute(a).map_err(at)?;
            }
            index(s.link_index, self.d.link_table.len(), "link_index").map_err(at)?;
        }
        Ok(())
    }

    fn stack(&mut self, i: i32) -> Result<(), String> {
        let u = index(i, self.d.stack_table.len(), "stack_index")?;
        match self.stacks[u] {
            1 => return Ok(()),
            2 => return Err(format!("stack_table[{i}] is invalid")),
            _ => {}
        }
        let verdict = self.d.stack_table[u]
            .location_indices
            .iter()
            .try_for_each(|&l| self.location(l))
            .map_err(|e| format!("stack_table[{i}]: {e}"));
        self.stacks[u] = if verdict.is_ok() { 1 } else { 2 };
        verdict
    }

    fn location(&mut self, i: i32) -> Result<(), String> {
        let u = index(i, self.d.location_table.len(), "location index")?;
        match self.locations[u] {
            1 => return Ok(()),
            2 => return Err(format!("location_table[{i}] is invalid")),
            _ => {}
        }
        let d = self.d;
        let l = &d.location_table[u];
        let verdict = (|| {
            let m = index(l.mapping_index, d.mapping_table.len(), "mapping_index")?;
            self.string(
                d.mapping_table[m].filename_strindex,
                "mapping filename_strindex",
            )?;
            for &a in &l.attribute_indices {
                self.attribute(a)?;
            }
            for line in &l.lines {
                let f = &d.function_table[index(
                    line.function_index,
                    d.function_table.len(),
                    "function_index",
                )?];
                self.string(f.name_strindex, "function name_strindex")?;
                self.string(f.system_name_strindex, "function system_name_strindex")?;
                self.string(f.filename_strindex, "function filename_strindex")?;
            }
            Ok::<(), String>(())
        })()
        .map_err(|e| format!("location_table[{i}]: {e}"));
        self.locations[u] = if verdict.is_ok() { 1 } else { 2 };
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::profiles::v1development::{
        Function, KeyValueAndUnit, Line, Link, Location, Mapping, ResourceProfiles, Sample,
        ScopeProfiles, Stack, ValueType,
    };

    fn dict() -> ProfilesDictionary {
        ProfilesDictionary {
            mapping_table: vec![Mapping::default()],
            location_table: vec![
                Location::default(),
                Location {
                    lines: vec![Line {
                        function_index: 1,
                        ..Line::default()
                    }],
                    ..Location::default()
                },
                Location {
                    mapping_index: 5,
                    ..Location::default()
                },
            ],
            function_table: vec![
                Function::default(),
                Function {
                    name_strindex: 1,
                    ..Function::default()
                },
            ],
            link_table: vec![Link::default()],
            string_table: vec![String::new(), "main".into(), "cpu".into()],
            attribute_table: vec![KeyValueAndUnit::default()],
            stack_table: vec![
                Stack::default(),
                Stack {
                    location_indices: vec![1],
                },
                Stack {
                    location_indices: vec![1, 2],
                },
            ],
        }
    }

    fn sample(stack: i32, values: Vec<i64>, ts: usize) -> Sample {
        Sample {
            stack_index: stack,
            values,
            timestamps_unix_nano: vec![5; ts],
            ..Sample::default()
        }
    }

    fn profile(samples: Vec<Sample>) -> Profile {
        Profile {
            sample_type: Some(ValueType {
                type_strindex: 2,
                unit_strindex: 0,
            }),
            samples,
            ..Profile::default()
        }
    }

    #[test]
    fn profiles_are_checked_one_at_a_time() {
        let mut no_type = profile(vec![]);
        no_type.sample_type = None;
        let mut bad_attr = profile(vec![sample(1, vec![1], 0)]);
        bad_attr.samples[0].attribute_indices = vec![3];
        let mut bad_link = profile(vec![sample(1, vec![1], 0)]);
        bad_link.samples[0].link_index = 1;
        let cases: Vec<(Profile, Option<&str>)> = vec![
            (profile(vec![sample(1, vec![3], 0)]), None),
            (profile(vec![sample(1, vec![], 2)]), None),
            (profile(vec![sample(1, vec![1, 2], 2)]), None),
            (profile(vec![]), None),
            (no_type, Some("sample_type is missing")),
            (profile(vec![sample(7, vec![1], 0)]), Some("stack_index 7")),
            (
                profile(vec![sample(-1, vec![1], 0)]),
                Some("stack_index -1"),
            ),
            (
                profile(vec![sample(2, vec![1], 0)]),
                Some("mapping_index 5"),
            ),
            (profile(vec![sample(1, vec![], 0)]), Some("neither values")),
            (
                profile(vec![sample(1, vec![1, 2], 3)]),
                Some("differ in length"),
            ),
            (bad_attr, Some("attribute index 3")),
            (bad_link, Some("link_index 1")),
        ];
        let d = dict();
        for (p, want) in &cases {
            let got = Checker::new(&d).profile(p).err();
            match (want, &got) {
                (None, None) => {}
                (Some(w), Some(g)) if g.contains(w) => {}
                _ => panic!("{p:?}: want {want:?}, got {got:?}"),
            }
        }
        let n = cases.len();
        let out = sanitize_profiles(ExportProfilesServiceRequest {
            resource_profiles: vec![ResourceProfiles {
                scope_profiles: vec![ScopeProfiles {
                    profiles: cases.into_iter().map(|c| c.0).collect(),
                    ..ScopeProfiles::default()
                }],
                ..ResourceProfiles::default()
            }],
            dictionary: Some(d),
        });
        assert_eq!((out.accepted, out.rejected), (4, n - 4));
        assert!(out.message.starts_with("rejected 8 invalid profile(s): resource_profiles[0].scope_profiles[0].profiles[4]: sample_type is missing; "), "{}", out.message);
        assert!(out.message.ends_with("(and 3 more)"), "{}", out.message);
        assert!(out.request.dictionary.is_some());
    }

    #[test]
    fn without_a_dictionary_every_profile_is_rejected() {
        let out = sanitize_profiles(ExportProfilesServiceRequest {
            resource_profiles: vec![ResourceProfiles {
                scope_profiles: vec![ScopeProfiles {
                    profiles: vec![profile(vec![sample(1, vec![1], 0)])],
                    ..ScopeProfiles::default()
                }],
                ..ResourceProfiles::default()
            }],
            dictionary: None,
        });
        assert_eq!((out.accepted, out.rejected), (0, 1));
        assert!(out.request.resource_profiles.is_empty());
        assert!(out.message.contains("no dictionary"), "{}", out.message);
    }
}
