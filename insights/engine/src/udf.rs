//! `di_field(event, path)`: the value at a dot path of the event JSON, as searches
//! compare it (strings lowercased, other values as JSON text). Fields with a column of
//! their own never need it.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::event::{at_path, search_text};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DiField {
    signature: Signature,
}

pub fn di_field() -> ScalarUDF {
    ScalarUDF::from(DiField {
        signature: Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable),
    })
}

fn extract(json: &str, path: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    at_path(&v, path).and_then(search_text)
}

impl ScalarUDFImpl for DiField {
    fn name(&self) -> &str {
        "di_field"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let path = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(p))) => p.clone(),
            _ => return exec_err!("di_field: the path must be a text literal"),
        };
        match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Utf8(json)) => Ok(ColumnarValue::Scalar(
                ScalarValue::Utf8(json.as_deref().and_then(|j| extract(j, &path))),
            )),
            ColumnarValue::Array(array) => {
                let Some(strings) = array.as_any().downcast_ref::<StringArray>() else {
                    return exec_err!("di_field: the event must be text");
                };
                let mut out = StringBuilder::with_capacity(strings.len(), strings.len() * 8);
                for i in 0..strings.len() {
                    if strings.is_null(i) {
                        out.append_null();
                    } else {
                        out.append_option(extract(strings.value(i), &path));
                    }
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
            }
            _ => exec_err!("di_field: the event must be text"),
        }
    }
}
