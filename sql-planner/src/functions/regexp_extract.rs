//! `REGEXP_EXTRACT(str, regex [, index])`: group `index` (default 0, the whole match) of the
//! first match of `regex` in `str`; NULL when there is no match, the group did not take part,
//! the regex is invalid, or an argument is NULL (Flink's behaviour).

use std::sync::Arc;

use arrow::array::{Array, Int64Array, StringBuilder};
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
                // Compiled once per batch; an invalid pattern yields NULL, as in Flink.
                let re = pattern.as_deref().and_then(|p| Regex::new(p).ok());
                match (re, index) {
                    (Some(re), Some(index)) => {
                        let mut locs = re.capture_locations();
                        for s in strs.iter() {
                            out.append_option(s.and_then(|s| extract(&re, &mut locs, s, index)));
                        }
                    }
                    _ => {
                        return Ok(ColumnarValue::Array(arrow::array::new_null_array(
                            &DataType::Utf8,
                            n,
                        )))
                    }
                }
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
