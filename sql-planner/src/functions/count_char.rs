//! Nexmark's Java UDF `com.github.nexmark.flink.udf.CountChar`: how many times the first
//! character of the second argument occurs in the first; 0 for a NULL string.

use std::sync::Arc;

use arrow::array::{Array, Int64Builder};
use arrow::datatypes::DataType;
use datafusion_common::{exec_err, plan_err, Result};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::{arg_array, as_strings, is_stringish, scalar_str};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CountChar {
    name: String,
    signature: Signature,
}

impl CountChar {
    pub fn new(name: &str) -> Self {
        CountChar {
            name: name.to_string(),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn count(s: &str, c: char) -> i64 {
    if c.is_ascii() {
        let b = c as u8;
        s.as_bytes().iter().filter(|&&x| x == b).count() as i64
    } else {
        s.chars().filter(|&x| x == c).count() as i64
    }
}

impl ScalarUDFImpl for CountChar {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.len() != 2 || !args.iter().all(is_stringish) {
            return plan_err!("{} expects (STRING, STRING), got {args:?}", self.name);
        }
        Ok(vec![DataType::Utf8, DataType::Utf8])
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let strs = arg_array(&args.args[0], n, &DataType::Utf8)?;
        let strs = as_strings(&strs)?;
        let mut out = Int64Builder::with_capacity(n);
        match scalar_str(&args.args[1]) {
            Some(Some(ch)) => {
                let Some(c) = ch.chars().next() else {
                    return exec_err!("{}: empty character argument", self.name);
                };
                for s in strs.iter() {
                    out.append_value(s.map_or(0, |s| count(s, c)));
                }
            }
            Some(None) => return exec_err!("{}: NULL character argument", self.name),
            None => {
                let chars = arg_array(&args.args[1], n, &DataType::Utf8)?;
                let chars = as_strings(&chars)?;
                for i in 0..n {
                    let c = if chars.is_null(i) {
                        None
                    } else {
                        chars.value(i).chars().next()
                    };
                    match (strs.is_null(i), c) {
                        (_, None) => {
                            return exec_err!("{}: empty or NULL character argument", self.name)
                        }
                        (true, _) => out.append_value(0),
                        (false, Some(c)) => out.append_value(count(strs.value(i), c)),
                    }
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_characters() {
        assert_eq!(super::count("abcabc", 'c'), 2);
        assert_eq!(super::count("", 'c'), 0);
        assert_eq!(super::count("çaç", 'ç'), 2);
    }
}
