//! Typed `params_<name>` columns of the trials table: one per parameter name found in any trial,
//! with a type inferred across all trials so that `WHERE params_lr < 1e-3` works in DuckDB
//! without casts. The `params` JSON column stays the lossless source; these are for querying.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow_schema::{DataType, Field};
use serde_json::{Map, Value};

/// How one parameter is stored. `Json` and `Utf8` are both Arrow strings, but `Json` cells hold
/// the value's JSON text (so a mixed column keeps `"1"` and `1` apart), `Utf8` the bare string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamKind {
    Boolean,
    Int64,
    Float64,
    Utf8,
    Json,
}

impl ParamKind {
    /// Kind of one value; `None` for JSON null, which constrains nothing and is stored as null.
    fn of(value: &Value) -> Option<Self> {
        Some(match value {
            Value::Null => return None,
            Value::Bool(_) => Self::Boolean,
            // u64 above i64::MAX cannot go in an Int64 column; it still is a number.
            Value::Number(n) if n.as_i64().is_some() => Self::Int64,
            Value::Number(_) => Self::Float64,
            Value::String(_) => Self::Utf8,
            Value::Array(_) | Value::Object(_) => Self::Json,
        })
    }

    /// The narrowest kind holding values of both kinds: integers widen to floats (a grid such as
    /// `lr = [1, 0.5]`), any other mix falls back to JSON text.
    fn merge(self, other: Self) -> Self {
        use ParamKind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Int64, Float64) | (Float64, Int64) => Float64,
            _ => Json,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Self::Boolean => DataType::Boolean,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Utf8 | Self::Json => DataType::Utf8,
        }
    }
}

/// One `params_<name>` column to write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParamColumn {
    pub name: String,
    pub kind: ParamKind,
}

/// Prefix of the typed parameter columns.
pub(crate) const PARAMS_PREFIX: &str = "params_";

impl ParamColumn {
    pub(crate) fn field(&self) -> Field {
        // Always nullable: a later trial (or a grid axis added mid-sweep) may lack the parameter.
        Field::new(format!("{PARAMS_PREFIX}{}", self.name), self.kind.data_type(), true)
    }

    /// The column's cells, one per params map, null where the map lacks the name (or holds JSON
    /// null). Values are converted per the inferred kind, which by construction fits every cell.
    pub(crate) fn build<'a>(&self, rows: impl Iterator<Item = &'a Map<String, Value>>) -> ArrayRef {
        let cells = rows.map(|params| params.get(&self.name).filter(|v| !v.is_null()));
        match self.kind {
            ParamKind::Boolean => Arc::new(cells.map(|v| v.and_then(Value::as_bool)).collect::<BooleanArray>()),
            ParamKind::Int64 => Arc::new(cells.map(|v| v.and_then(Value::as_i64)).collect::<Int64Array>()),
            ParamKind::Float64 => Arc::new(cells.map(|v| v.and_then(Value::as_f64)).collect::<Float64Array>()),
            ParamKind::Utf8 => Arc::new(cells.map(|v| v.and_then(Value::as_str)).collect::<StringArray>()),
            // serde_json's Display is compact JSON text, which DuckDB's `json` functions parse.
            ParamKind::Json => Arc::new(cells.map(|v| v.map(Value::to_string)).collect::<StringArray>()),
        }
    }
}

/// The kind of each parameter name so far, widened as values arrive: one column per name, sorted by
/// name, typed across all values. A name whose values are all null gets a Utf8 column of nulls.
#[derive(Debug, Default, Clone)]
pub(crate) struct ParamKinds(BTreeMap<String, Option<ParamKind>>);

impl ParamKinds {
    pub(crate) fn add(&mut self, name: &str, value: &Value) {
        let seen = match self.0.get_mut(name) {
            Some(seen) => seen,
            None => self.0.entry(name.to_owned()).or_insert(None),
        };
        *seen = match (*seen, ParamKind::of(value)) {
            (Some(a), Some(b)) => Some(a.merge(b)),
            (a, b) => a.or(b),
        };
    }

    pub(crate) fn columns(&self) -> Vec<ParamColumn> {
        self.0
            .iter()
            .map(|(name, kind)| ParamColumn { name: name.clone(), kind: kind.unwrap_or(ParamKind::Utf8) })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use serde_json::json;

    /// One column per parameter name found in any row, sorted by name, typed across all rows. A name
    /// whose values are all null gets a Utf8 column of nulls.
    fn infer_param_columns<'a>(rows: impl Iterator<Item = &'a Map<String, Value>>) -> Vec<ParamColumn> {
        let mut kinds = ParamKinds::default();
        for params in rows {
            for (name, value) in params {
                kinds.add(name, value);
            }
        }
        kinds.columns()
    }

    fn maps(values: &[Value]) -> Vec<Map<String, Value>> {
        values.iter().map(|v| v.as_object().expect("test params are objects").clone()).collect()
    }

    fn kinds(rows: &[Map<String, Value>]) -> Vec<(String, ParamKind)> {
        infer_param_columns(rows.iter()).into_iter().map(|c| (c.name, c.kind)).collect()
    }

    #[test]
    fn uniform_kinds_keep_their_type_and_columns_are_sorted() {
        let rows = maps(&[
            json!({"width": 1, "lr": 0.1, "aug": true, "model": "resnet"}),
            json!({"width": 2, "lr": 0.2, "aug": false, "model": "vit"}),
        ]);
        assert_eq!(
            kinds(&rows),
            vec![
                ("aug".into(), ParamKind::Boolean),
                ("lr".into(), ParamKind::Float64),
                ("model".into(), ParamKind::Utf8),
                ("width".into(), ParamKind::Int64),
            ]
        );
    }

    #[test]
    fn ints_and_floats_widen_to_float64() {
        let rows = maps(&[json!({"lr": 1}), json!({"lr": 0.5}), json!({})]);
        let cols = infer_param_columns(rows.iter());
        assert_eq!(cols[0].kind, ParamKind::Float64);
        assert_eq!(cols[0].field().data_type(), &DataType::Float64);
        let array = cols[0].build(rows.iter());
        let array = array.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(array.value(0), 1.0);
        assert_eq!(array.value(1), 0.5);
        assert!(array.is_null(2));
    }

    #[test]
    fn mixed_strings_and_ints_become_json_text() {
        let rows = maps(&[json!({"seed": "a"}), json!({"seed": 3})]);
        let cols = infer_param_columns(rows.iter());
        assert_eq!(cols[0].kind, ParamKind::Json);
        assert_eq!(cols[0].field().data_type(), &DataType::Utf8);
        let array = cols[0].build(rows.iter());
        let array = array.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(array.value(0), "\"a\"");
        assert_eq!(array.value(1), "3");
    }

    #[test]
    fn tables_arrays_and_bool_mixes_become_json_text() {
        let rows = maps(&[
            json!({"opt": {"name": "adam", "lr": 1e-4}, "sizes": [1, 2], "flag": true}),
            json!({"opt": {"name": "sgd"}, "sizes": [3], "flag": 1}),
        ]);
        assert_eq!(
            kinds(&rows),
            vec![("flag".into(), ParamKind::Json), ("opt".into(), ParamKind::Json), ("sizes".into(), ParamKind::Json),]
        );
        let opt = &infer_param_columns(rows.iter())[1];
        let array = opt.build(rows.iter());
        let array = array.as_any().downcast_ref::<StringArray>().unwrap();
        let back: Value = serde_json::from_str(array.value(0)).unwrap();
        assert_eq!(back, json!({"name": "adam", "lr": 1e-4}));
    }

    #[test]
    fn nulls_constrain_nothing_and_all_null_is_utf8() {
        let rows = maps(&[json!({"a": null, "b": null}), json!({"a": 4})]);
        assert_eq!(kinds(&rows), vec![("a".into(), ParamKind::Int64), ("b".into(), ParamKind::Utf8)]);
    }

    #[test]
    fn huge_unsigned_integers_are_numbers_not_int64() {
        let rows = maps(&[json!({"n": u64::MAX})]);
        assert_eq!(kinds(&rows), vec![("n".into(), ParamKind::Float64)]);
    }
}
