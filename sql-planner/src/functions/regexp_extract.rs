//! `REGEXP_EXTRACT(str, regex [, index])`: group `index` (default 0, the whole match) of the
//! first match of `regex` in `str`; NULL when there is no match, the group did not take part,
//! the regex is invalid, or an argument is NULL (Flink's behaviour).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion_common::{plan_err, Result};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use regex::{CaptureLocations, Regex};

use super::{
    arg_array, as_strings, expect_strings, is_integer, is_stringish, scalar_i64, scalar_str,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RegexpExtract {
    signature: Signature,
}

impl RegexpExtract {
    pub fn new() -> Self {
        RegexpExtract {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Remembered results for repeated inputs, per task thread. Streams often carry few distinct
/// strings (channels, URLs, user agents); then a lookup replaces a regex search. The cache is
/// bounded, and turns itself off when inputs rarely repeat.
struct ResultCache {
    pattern: String,
    index: i64,
    /// The pattern compiled once; `None` when it is invalid (every result is then NULL).
    regex: Option<(Regex, CaptureLocations)>,
    results: HashMap<Box<str>, Option<Box<str>>, foldhash::fast::RandomState>,
    lookups: u64,
    hits: u64,
    enabled: bool,
}

const CACHE_ENTRIES: usize = 1 << 16;
/// Lookups before the hit rate is judged, and the rate below which caching stops.
const CACHE_TRIAL: u64 = 1 << 16;
const CACHE_MIN_HIT_RATE: f64 = 0.5;

impl ResultCache {
    fn new() -> Self {
        ResultCache {
            pattern: String::new(),
            index: 0,
            regex: None,
            results: HashMap::default(),
            lookups: 0,
            hits: 0,
            enabled: true,
        }
    }

    /// Starts over when the pattern or group changes.
    fn reset_for(&mut self, pattern: &str, index: i64) {
        if self.pattern != pattern
            || self.index != index
            || self.lookups == 0 && self.regex.is_none()
        {
            *self = ResultCache::new();
            self.pattern = pattern.to_string();
            self.index = index;
            self.regex = Regex::new(pattern).ok().map(|re| {
                let locs = re.capture_locations();
                (re, locs)
            });
        }
    }

    fn extract_into(&mut self, strs: &StringArray, out: &mut StringBuilder) {
        let Some((re, locs)) = self.regex.as_mut() else {
            strs.iter().for_each(|_| out.append_null());
            return;
        };
        let re = &*re;
        if !self.enabled {
            for s in strs.iter() {
                out.append_option(s.and_then(|s| extract(re, locs, s, self.index)));
            }
            return;
        }
        for s in strs.iter() {
            let Some(s) = s else {
                out.append_null();
                continue;
            };
            self.lookups += 1;
            if let Some(r) = self.results.get(s) {
                self.hits += 1;
                out.append_option(r.as_deref());
                continue;
            }
            let r = extract(re, locs, s, self.index);
            out.append_option(r);
            if self.results.len() < CACHE_ENTRIES {
                self.results.insert(s.into(), r.map(Into::into));
            }
        }
        if self.lookups >= CACHE_TRIAL
            && (self.hits as f64) < CACHE_MIN_HIT_RATE * self.lookups as f64
        {
            self.enabled = false;
            self.results = HashMap::default();
        }
    }
}

thread_local! {
    static CACHE: RefCell<ResultCache> = RefCell::new(ResultCache::new());
}

/// Group `index` of the first match; `locs` is reused across rows to avoid an allocation per
/// row.
fn extract<'a>(re: &Regex, locs: &mut CaptureLocations, s: &'a str, index: i64) -> Option<&'a str> {
    if index < 0 {
        return None;
    }
    re.captures_read(locs, s)?;
    let (start, end) = locs.get(index as usize)?;
    Some(&s[start..end])
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        expect_strings("REGEXP_EXTRACT", args, 2..=3)?;
        if !is_stringish(&args[0])
            || !is_stringish(&args[1])
            || args.get(2).is_some_and(|t| !is_integer(t))
        {
            return plan_err!("REGEXP_EXTRACT expects (STRING, STRING [, INT]), got {args:?}");
        }
        let mut v = vec![DataType::Utf8, DataType::Utf8];
        if args.len() == 3 {
            v.push(DataType::Int64);
        }
        Ok(v)
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let strs = arg_array(&args.args[0], n, &DataType::Utf8)?;
        let strs = as_strings(&strs)?;
        let index_scalar = match args.args.get(2) {
            None => Some(Some(0)),
            Some(v) => scalar_i64(v),
        };
        let mut out = StringBuilder::with_capacity(n, 8 * n);
        match (scalar_str(&args.args[1]), index_scalar) {
            (Some(pattern), Some(index)) => {
                let (Some(pattern), Some(index)) = (pattern, index) else {
                    return Ok(ColumnarValue::Array(arrow::array::new_null_array(
                        &DataType::Utf8,
                        n,
                    )));
                };
                CACHE.with_borrow_mut(|c| {
                    c.reset_for(&pattern, index);
                    c.extract_into(strs, &mut out);
                });
            }
            _ => {
                let pats = arg_array(&args.args[1], n, &DataType::Utf8)?;
                let pats = as_strings(&pats)?;
                let idx = match args.args.get(2) {
                    Some(v) => arg_array(v, n, &DataType::Int64)?,
                    None => Arc::new(Int64Array::from(vec![0; n])),
                };
                let idx = idx
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("cast to Int64");
                let mut cache: Option<(String, Option<Regex>)> = None;
                for i in 0..n {
                    if strs.is_null(i) || pats.is_null(i) || idx.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    let p = pats.value(i);
                    if cache.as_ref().is_none_or(|(cp, _)| cp != p) {
                        cache = Some((p.to_string(), Regex::new(p).ok()));
                    }
                    let re = cache.as_ref().and_then(|(_, r)| r.as_ref());
                    out.append_option(re.and_then(|re| {
                        let mut locs = re.capture_locations();
                        extract(re, &mut locs, strs.value(i), idx.value(i))
                    }));
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cache: &mut ResultCache, inputs: &[Option<&str>]) -> Vec<Option<String>> {
        let mut out = StringBuilder::new();
        cache.extract_into(&StringArray::from(inputs.to_vec()), &mut out);
        out.finish().iter().map(|v| v.map(str::to_string)).collect()
    }

    #[test]
    fn cached_results_equal_computed_ones_and_the_cache_gives_up_on_unique_inputs() {
        let mut c = ResultCache::new();
        c.reset_for("(&|^)channel_id=([^&]*)", 2);
        let inputs = [
            Some("a&channel_id=1"),
            None,
            Some("b"),
            Some("a&channel_id=1"),
            Some("b"),
        ];
        let want = vec![
            Some("1".to_string()),
            None,
            None,
            Some("1".to_string()),
            None,
        ];
        assert_eq!(run(&mut c, &inputs), want);
        assert_eq!(run(&mut c, &inputs), want, "second pass from the cache");
        assert_eq!(c.hits, 6);
        let unique: Vec<String> = (0..CACHE_TRIAL + 10)
            .map(|i| format!("x&channel_id={i}"))
            .collect();
        let refs: Vec<Option<&str>> = unique.iter().map(|s| Some(s.as_str())).collect();
        let got = run(&mut c, &refs);
        assert_eq!(got[5].as_deref(), Some("5"));
        assert!(!c.enabled, "a low hit rate turns the cache off");
        assert_eq!(
            run(&mut c, &inputs),
            want,
            "and results stay right without it"
        );
        let mut bad = ResultCache::new();
        bad.reset_for("(", 1);
        assert_eq!(
            run(&mut bad, &[Some("x")]),
            vec![None],
            "an invalid pattern gives NULL"
        );
    }

    #[test]
    fn channel_id_extraction() {
        let re = Regex::new("(&|^)channel_id=([^&]*)").unwrap();
        let mut l = re.capture_locations();
        let url = "https://x/item.htm?query=1&channel_id=42";
        assert_eq!(extract(&re, &mut l, url, 2), Some("42"));
        assert_eq!(extract(&re, &mut l, "https://x/item.htm?query=1", 2), None);
        assert_eq!(extract(&re, &mut l, "channel_id=7&a=b", 2), Some("7"));
        assert_eq!(extract(&re, &mut l, "channel_id=7", 9), None);
    }
}
