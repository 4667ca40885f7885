//! OTLP profiles (1.10, `v1development`) to pprof. Pure: no I/O.
//!
//! The pprof messages are written here as prost structs from the field numbers of
//! pprof's `profile.proto` (package `perftools.profiles`); only what the bridge writes
//! is declared. OTLP keeps one dictionary per request with index 0 as the "null" entry
//! of every table; pprof keeps tables per profile with nonzero ids. The conversion
//! copies only what a profile uses:
//! - `Profile.sample_type` → the one pprof sample type (and `default_sample_type`);
//!   `period_type`, `period`, `time_unix_nano`, `duration_nano` as they are;
//! - a sample's value is the sum of its `values`, or its number of timestamps when it
//!   has only timestamps;
//! - `Stack.location_indices` (leaf first in both) → `Sample.location_id`;
//! - a location's `lines` → `Line`s (innermost first in both), functions and mappings
//!   with new ids, the mapping's `has_*` flags from what its locations carry;
//! - sample attributes → labels (strings as `str`, integers as `num` with their unit,
//!   booleans and doubles as text); the sample's link → `span_id` and `trace_id` labels
//!   (lower-case hex), which Pyroscope uses to join profiles to spans.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::profiles::v1development::{
    Profile as OtlpProfile, ProfilesDictionary, Sample as OtlpSample,
};

/// `perftools.profiles.Profile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// `perftools.profiles.ValueType`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub ty: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `perftools.profiles.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// `perftools.profiles.Label`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

/// `perftools.profiles.Mapping`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// `perftools.profiles.Location`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// `perftools.profiles.Line`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// `perftools.profiles.Function`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

/// Why a profile cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("{table}[{index}] does not exist (the dictionary's {table} has {len} entries)")]
    Missing {
        table: &'static str,
        index: i64,
        len: usize,
    },
    #[error("the profile has no sample_type")]
    NoSampleType,
    #[error("a sample has neither values nor timestamps")]
    EmptySample,
}

fn get<'a, T>(table: &'a [T], index: i32, name: &'static str) -> Result<&'a T, ConvertError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .ok_or(ConvertError::Missing {
            table: name,
            index: i64::from(index),
            len: table.len(),
        })
}

/// Builds one pprof profile, interning strings and ids as they are used.
struct Builder<'d> {
    dict: &'d ProfilesDictionary,
    out: Profile,
    strings: HashMap<Cow<'d, str>, i64>,
    locations: HashMap<i32, u64>,
    functions: HashMap<i32, u64>,
    mappings: HashMap<i32, u64>,
}

impl<'d> Builder<'d> {
    fn string(&mut self, index: i32) -> Result<i64, ConvertError> {
        let s = get(&self.dict.string_table, index, "string_table")?;
        Ok(self.text(s))
    }

    fn text(&mut self, s: &'d str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.out.string_table.len() as i64;
        self.out.string_table.push(s.to_owned());
        self.strings.insert(Cow::Borrowed(s), i);
        i
    }

    /// For strings made here (hex ids, numbers as text).
    fn owned(&mut self, s: String) -> i64 {
        if let Some(&i) = self.strings.get(s.as_str()) {
            return i;
        }
        let i = self.out.string_table.len() as i64;
        self.out.string_table.push(s.clone());
        self.strings.insert(Cow::Owned(s), i);
        i
    }

    fn value_type(
        &mut self,
        vt: &opentelemetry_proto::tonic::profiles::v1development::ValueType,
    ) -> Result<ValueType, ConvertError> {
        Ok(ValueType {
            ty: self.string(vt.type_strindex)?,
            unit: self.string(vt.unit_strindex)?,
        })
    }

    fn function(&mut self, index: i32) -> Result<u64, ConvertError> {
        if let Some(&id) = self.functions.get(&index) {
            return Ok(id);
        }
        let f = get(&self.dict.function_table, index, "function_table")?;
        let id = self.out.function.len() as u64 + 1;
        let function = Function {
            id,
            name: self.string(f.name_strindex)?,
            system_name: self.string(f.system_name_strindex)?,
            filename: self.string(f.filename_strindex)?,
            start_line: f.start_line,
        };
        self.out.function.push(function);
        self.functions.insert(index, id);
        Ok(id)
    }

    fn mapping(&mut self, index: i32) -> Result<u64, ConvertError> {
        if index == 0 {
            return Ok(0);
        }
        if let Some(&id) = self.mappings.get(&index) {
            return Ok(id);
        }
        let m = get(&self.dict.mapping_table, index, "mapping_table")?;
        let id = self.out.mapping.len() as u64 + 1;
        let mapping = Mapping {
            id,
            memory_start: m.memory_start,
            memory_limit: m.memory_limit,
            file_offset: m.file_offset,
            filename: self.string(m.filename_strindex)?,
            ..Mapping::default()
        };
        self.out.mapping.push(mapping);
        self.mappings.insert(index, id);
        Ok(id)
    }

    fn location(&mut self, index: i32) -> Result<u64, ConvertError> {
        if let Some(&id) = self.locations.get(&index) {
            return Ok(id);
        }
        let l = get(&self.dict.location_table, index, "location_table")?;
        let mapping_id = self.mapping(l.mapping_index)?;
        let mut lines = Vec::with_capacity(l.lines.len());
        let (mut names, mut files, mut numbers) = (false, false, false);
        for line in &l.lines {
            let function_id = self.function(line.function_index)?;
            let f = get(
                &self.dict.function_table,
                line.function_index,
                "function_table",
            )?;
            names |= f.name_strindex != 0;
            files |= f.filename_strindex != 0;
            numbers |= line.line != 0;
            lines.push(Line {
                function_id,
                line: line.line,
            });
        }
        if let Some(m) = mapping_id
            .checked_sub(1)
            .and_then(|i| self.out.mapping.get_mut(i as usize))
        {
            m.has_functions |= names;
            m.has_filenames |= files;
            m.has_line_numbers |= numbers;
            m.has_inline_frames |= lines.len() > 1;
        }
        let id = self.out.location.len() as u64 + 1;
        self.out.location.push(Location {
            id,
            mapping_id,
            address: l.address,
            line: lines,
        });
        self.locations.insert(index, id);
        Ok(id)
    }

    fn sample(&mut self, s: &OtlpSample) -> Result<Sample, ConvertError> {
        let value = if s.values.is_empty() {
            i64::try_from(s.timestamps_unix_nano.len()).unwrap_or(i64::MAX)
        } else {
            s.values.iter().fold(0i64, |a, v| a.saturating_add(*v))
        };
        if s.values.is_empty() && s.timestamps_unix_nano.is_empty() {
            return Err(ConvertError::EmptySample);
        }
        let stack = get(&self.dict.stack_table, s.stack_index, "stack_table")?;
        let location_id = stack
            .location_indices
            .iter()
            .map(|&i| self.location(i))
            .collect::<Result<Vec<_>, _>>()?;
        let mut label = Vec::with_capacity(s.attribute_indices.len() + 2);
        for &a in &s.attribute_indices {
            let kv = get(&self.dict.attribute_table, a, "attribute_table")?;
            let key = self.string(kv.key_strindex)?;
            let l = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(v)) => Label {
                    key,
                    str: self.text(v),
                    ..Label::default()
                },
                Some(Value::IntValue(n)) => Label {
                    key,
                    num: *n,
                    num_unit: self.string(kv.unit_strindex)?,
                    ..Label::default()
                },
                Some(Value::BoolValue(b)) => Label {
                    key,
                    str: self.owned(b.to_string()),
                    ..Label::default()
                },
                Some(Value::DoubleValue(d)) => Label {
                    key,
                    str: self.owned(d.to_string()),
                    ..Label::default()
                },
                _ => continue,
            };
            label.push(l);
        }
        if s.link_index != 0 {
            let link = get(&self.dict.link_table, s.link_index, "link_table")?;
            for (name, id, len) in [
                ("span_id", &link.span_id, 8),
                ("trace_id", &link.trace_id, 16),
            ] {
                if id.len() == len && id.iter().any(|b| *b != 0) {
                    let key = self.text(name);
                    let str = self.owned(hex(id));
                    label.push(Label {
                        key,
                        str,
                        ..Label::default()
                    });
                }
            }
        }
        Ok(Sample {
            location_id,
            value: vec![value],
            label,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Converts one OTLP profile, with the request's dictionary, to pprof.
///
/// # Errors
/// [`ConvertError`] for a reference outside the dictionary, a missing sample type or
/// an empty sample (receivers reject such profiles before they get here).
pub fn convert(p: &OtlpProfile, dict: &ProfilesDictionary) -> Result<Profile, ConvertError> {
    let mut b = Builder {
        dict,
        out: Profile::default(),
        strings: HashMap::new(),
        locations: HashMap::new(),
        functions: HashMap::new(),
        mappings: HashMap::new(),
    };
    b.text("");
    let st = p.sample_type.as_ref().ok_or(ConvertError::NoSampleType)?;
    let sample_type = b.value_type(st)?;
    b.out.default_sample_type = sample_type.ty;
    b.out.sample_type = vec![sample_type];
    b.out.period_type = p
        .period_type
        .as_ref()
        .map(|v| b.value_type(v))
        .transpose()?;
    b.out.period = p.period;
    b.out.time_nanos = i64::try_from(p.time_unix_nano).unwrap_or(i64::MAX);
    b.out.duration_nanos = i64::try_from(p.duration_nano).unwrap_or(i64::MAX);
    b.out.sample = p
        .samples
        .iter()
        .map(|s| b.sample(s))
        .collect::<Result<_, _>>()?;
    Ok(b.out)
}

#[cfg(test)]
#[path = "pprof_tests.rs"]
mod tests;
