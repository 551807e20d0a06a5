//! `SPLIT_INDEX(str, separator, index)`: the `index`-th (0-based) piece of `str` split by
//! `separator`; NULL when the index is out of range or an argument is NULL.

use std::sync::Arc;

use arrow::array::{Array, StringBuilder};
use arrow::datatypes::DataType;
use datafusion_common::{plan_err, Result};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::{
    arg_array, as_strings, expect_strings, is_integer, is_stringish, scalar_i64, scalar_str,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SplitIndex {
    signature: Signature,
}

impl SplitIndex {
    pub fn new() -> Self {
        SplitIndex {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn piece<'a>(s: &'a str, sep: &str, index: i64) -> Option<&'a str> {
    if index < 0 || sep.is_empty() {
        return None;
    }
    match sep.as_bytes() {
        [b] if b.is_ascii() => piece_by_byte(s, *b, index as usize),
        _ => s.split(sep).nth(index as usize),
    }
}

/// `piece` for a one-byte ASCII separator: a plain scan, cheaper on short strings than the
/// general searchers (an ASCII byte never falls inside a multi-byte character).
fn piece_by_byte(s: &str, sep: u8, index: usize) -> Option<&str> {
    let mut start = 0;
    let mut seen = 0;
    for (i, &c) in s.as_bytes().iter().enumerate() {
        if c == sep {
            if seen == index {
                return Some(&s[start..i]);
            }
            seen += 1;
            start = i + 1;
        }
    }
    (seen == index).then(|| &s[start..])
}

impl ScalarUDFImpl for SplitIndex {
    fn name(&self) -> &str {
        "split_index"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        expect_strings("SPLIT_INDEX", args, 3..=3)?;
        if !is_stringish(&args[0]) || !is_stringish(&args[1]) || !is_integer(&args[2]) {
            return plan_err!("SPLIT_INDEX expects (STRING, STRING, INT), got {args:?}");
        }
        Ok(vec![DataType::Utf8, DataType::Utf8, DataType::Int64])
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let strs = arg_array(&args.args[0], n, &DataType::Utf8)?;
        let strs = as_strings(&strs)?;
        let mut out = StringBuilder::with_capacity(n, strs.value_data().len() / 4);
        match (scalar_str(&args.args[1]), scalar_i64(&args.args[2])) {
            (Some(sep), Some(index)) => {
                let (Some(sep), Some(index)) = (sep, index) else {
                    return Ok(ColumnarValue::Array(arrow::array::new_null_array(
                        &DataType::Utf8,
                        n,
                    )));
                };
                for s in strs.iter() {
                    out.append_option(s.and_then(|s| piece(s, &sep, index)));
                }
            }
            _ => {
                let seps = arg_array(&args.args[1], n, &DataType::Utf8)?;
                let seps = as_strings(&seps)?;
                let idx = arg_array(&args.args[2], n, &DataType::Int64)?;
                let idx = idx
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .expect("cast to Int64");
                for i in 0..n {
                    let v = if strs.is_null(i) || seps.is_null(i) || idx.is_null(i) {
                        None
                    } else {
                        piece(strs.value(i), seps.value(i), idx.value(i))
                    };
                    out.append_option(v);
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::piece;

    #[test]
    fn pieces_of_a_url() {
        let url = "https://www.nexmark.com/abc/de_f/g/item.htm?query=1";
        assert_eq!(piece(url, "/", 3), Some("abc"));
        assert_eq!(piece(url, "/", 4), Some("de_f"));
        assert_eq!(piece(url, "/", 1), Some(""));
        assert_eq!(piece(url, "/", 9), None);
        assert_eq!(piece(url, "/", -1), None);
        assert_eq!(piece("a::b::c", "::", 2), Some("c"));
        assert_eq!(piece("é/ü", "/", 1), Some("ü"));
        assert_eq!(piece("abc", "/", 0), Some("abc"));
        assert_eq!(piece("abc", "/", 1), None);
    }
}
