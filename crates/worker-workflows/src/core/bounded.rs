//! Bounded numbers and lists in params: a workflow's params come from outside, and a
//! number that sizes an allocation or a loop must have a ceiling, or one request could
//! abort the isolate (an allocation failure is not a panic: nothing catches it) or burn
//! its CPU. Used as `#[serde(deserialize_with = "…")]`, so the field keeps its plain type
//! and a value over the bound is a params error naming the field
//! (`actions[0].noop.count: 5000 is more than the 1000 allowed`).

use serde::de::{Deserialize, Deserializer, Error};

/// A whole number of at most `MAX`.
pub fn at_most<'de, D, T, const MAX: u64>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let n = u64::deserialize(deserializer)?;
    if n > MAX {
        return Err(D::Error::custom(format!("{n} is more than the {MAX} allowed")));
    }
    T::try_from(n).map_err(|_| D::Error::custom(format!("{n} is out of range")))
}

/// A list of at most `MAX` items.
pub fn list_of_at_most<'de, D, T, const MAX: usize>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let items = Vec::<T>::deserialize(deserializer)?;
    if items.len() > MAX {
        return Err(D::Error::custom(format!("{} items are more than the {MAX} allowed", items.len())));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use crate::core::validate::typed_params;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Params {
        #[serde(deserialize_with = "super::list_of_at_most::<_, _, 3>")]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        #[serde(deserialize_with = "super::at_most::<_, _, 10>")]
        count: u32,
        #[serde(default = "one", deserialize_with = "super::at_most::<_, _, 1000>")]
        bytes: usize,
    }

    fn one() -> usize {
        1
    }

    #[test]
    fn a_value_over_its_bound_is_refused_naming_the_field() {
        assert!(typed_params::<Params>(&json!({"items": [{"count": 10, "bytes": 1000}, {"count": 0}]})).is_ok());
        let over = typed_params::<Params>(&json!({"items": [{"count": 1}, {"count": 11}]})).unwrap_err();
        assert_eq!(over.0, "items[1].count: 11 is more than the 10 allowed");
        let bytes = typed_params::<Params>(&json!({"items": [{"count": 1, "bytes": 1001}]})).unwrap_err();
        assert_eq!(bytes.0, "items[0].bytes: 1001 is more than the 1000 allowed");
        let long = typed_params::<Params>(&json!({"items": [{"count": 1}, {"count": 1}, {"count": 1}, {"count": 1}]})).unwrap_err();
        assert_eq!(long.0, "items: 4 items are more than the 3 allowed");
        let negative = typed_params::<Params>(&json!({"items": [{"count": -1}]})).unwrap_err();
        assert!(negative.0.starts_with("items[0].count: invalid value"), "{}", negative.0);
        let huge = typed_params::<Params>(&json!({"items": [{"count": u64::MAX}]})).unwrap_err();
        assert!(huge.0.contains("is more than the 10 allowed"), "{}", huge.0);
    }
}
