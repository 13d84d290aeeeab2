//! Property tests of the Directory Insights request parser and query builder: any
//! body, any search term answers a query or a 400 naming the field, never a panic,
//! and long terms become shallow expressions.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::query::{term_expr, EventQuery, MAX_TERM_CONDITIONS};

/// Any JSON value, biased toward the shapes a search term takes.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z_.]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("and"),
            Just("or"),
            Just("not"),
            Just("event_type"),
            Just("success"),
            Just("initiated_by.type"),
            Just("event")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        let key = prop_oneof![
            Just("and".to_string()),
            Just("or".to_string()),
            Just("not".to_string()),
            Just("event_type".to_string()),
            Just("success".to_string()),
            Just("service".to_string()),
            "[a-z_.]{0,10}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The depth of an expression tree.
fn depth(e: &datafusion::logical_expr::Expr) -> usize {
    use datafusion::logical_expr::{BinaryExpr, Expr};
    match e {
        Expr::BinaryExpr(BinaryExpr { left, right, .. }) => 1 + depth(left).max(depth(right)),
        Expr::Not(inner) => 1 + depth(inner),
        _ => 1,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_search_term_is_a_query_or_a_400(term in json_value()) {
        if let Err(e) = term_expr(&term) {
            prop_assert!(e.to_string().contains("search_term"), "{e}");
        }
    }

    #[test]
    fn any_body_is_a_query_or_a_400(
        term in json_value(),
        other in json_value(),
        key in prop_oneof![Just("limit"), Just("skip"), Just("fields"), Just("search_after"), Just("service"), Just("start_time"), Just("sort")],
    ) {
        let mut body = json!({"service": ["all"], "start_time": "2026-12-01T00:00:00Z", "search_term": term});
        body[key] = other;
        let _ = EventQuery::parse(&body);
    }
}

#[test]
fn the_probes_terms_are_refused_or_kept_shallow() {
    assert!(
        term_expr(&json!({"and": [{}]})).is_err(),
        "an empty condition is a 400"
    );
    let ors: Vec<Value> = (0..700)
        .map(|i| json!({"username": format!("u{i}")}))
        .collect();
    let mut term = json!({"or": []});
    term["or"] = Value::Array(ors.clone());
    // Repeated fields in one list are refused, so 700 conditions come as 700 nested
    // single-condition terms, the probe's shape, or as one field with 700 values.
    let nested: Vec<Value> = ors.iter().map(|c| json!({"and": [c]})).collect();
    let e = term_expr(&json!({"or": nested})).expect("700 conditions are allowed");
    assert!(depth(&e) <= 12, "depth {}", depth(&e));
    let too_many: Vec<Value> = (0..=MAX_TERM_CONDITIONS)
        .map(|i| json!({"and": [{"username": format!("u{i}")}]}))
        .collect();
    let err = term_expr(&json!({"or": too_many})).unwrap_err();
    assert!(err.to_string().contains("at most"), "{err}");
    let mut deep = json!({"event_type": "x"});
    for _ in 0..20 {
        deep = json!({"and": [deep]});
    }
    assert!(term_expr(&deep).is_err(), "nesting is bounded");
}
