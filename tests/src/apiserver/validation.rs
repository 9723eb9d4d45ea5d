//! The validation kube-apiserver applies to `events.k8s.io/v1` Events
//! (pkg/apis/core/validation/events.go), so that a writer the test server
//! accepts is one the real server accepts:
//!
//! - on create: a DNS-subdomain name, `eventTime`, `type` Normal or
//!   Warning, `reportingController` (a qualified name) and
//!   `reportingInstance` (at most 128 bytes), `action` and `reason` (at
//!   most 128 bytes each), a `note` of at most 1024 bytes, a `series` (if
//!   any) counting at least 2 with a `lastObservedTime`, no deprecated
//!   fields, and a `regarding` namespace that is the Event's own unless it
//!   lives in `default` or `kube-system`;
//! - on update: the same, and only `series` and metadata may change.

use serde_json::Value;

use super::store::ApiError;

/// The byte limits of `reportingInstance`, `action` and `reason`.
const SHORT_FIELD_LIMIT: usize = 128;
/// The byte limit of `note`.
const NOTE_LIMIT: usize = 1024;

/// The fields an events.k8s.io/v1 update may not change.
const IMMUTABLE: [&str; 10] = [
    "regarding",
    "related",
    "reason",
    "note",
    "type",
    "eventTime",
    "action",
    "reportingController",
    "reportingInstance",
    "deprecatedSource",
];

/// Checks an Event written through events.k8s.io/v1; `old` is the stored
/// Event on an update.
pub fn event_v1(ns: &str, name: &str, new: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let mut errs = Vec::new();
    let text = |f: &str| new.get(f).and_then(Value::as_str).unwrap_or("");
    if old.is_none() && !is_dns_subdomain(name) {
        errs.push(format!(
            "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain \
             of at most 253 characters is required"
        ));
    }
    let series_changed = old.is_none_or(|o| o.get("series") != new.get("series"));
    if series_changed && let Some(series) = new.get("series").filter(|s| !s.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            errs.push("series.count: Invalid value: \"\": should be at least 2".into());
        }
        if text_of(series, "lastObservedTime").is_empty() {
            errs.push("series.lastObservedTime: Required value".into());
        }
    }
    if old.is_none() {
        if text("eventTime").is_empty() {
            errs.push("eventTime: Required value".into());
        }
        let kind = text("type");
        if kind != "Normal" && kind != "Warning" {
            errs.push(format!(
                "type: Invalid value: \"\": has invalid value: {kind}"
            ));
        }
        for deprecated in [
            "deprecatedFirstTimestamp",
            "deprecatedLastTimestamp",
            "deprecatedCount",
        ] {
            if new.get(deprecated).is_some_and(|v| !v.is_null()) {
                errs.push(format!(
                    "{deprecated}: Invalid value: \"\": needs to be unset"
                ));
            }
        }
    }
    let regarding_ns = new
        .pointer("/regarding/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if regarding_ns.is_empty() && ns != "default" && ns != "kube-system" {
        errs.push(
            "regarding.namespace: Invalid value: \"\": does not match event.namespace".into(),
        );
    }
    let controller = text("reportingController");
    if controller.is_empty() {
        errs.push("reportingController: Required value".into());
    } else if !is_qualified_name(controller) {
        errs.push(format!(
            "reportingController: Invalid value: {controller:?}: must be a qualified name"
        ));
    }
    for (field, limit) in [
        ("reportingInstance", SHORT_FIELD_LIMIT),
        ("action", SHORT_FIELD_LIMIT),
        ("reason", SHORT_FIELD_LIMIT),
        ("note", NOTE_LIMIT),
    ] {
        let value = text(field);
        if value.is_empty() && field != "note" {
            errs.push(format!("{field}: Required value"));
        }
        if value.len() > limit {
            errs.push(format!(
                "{field}: Invalid value: \"\": can have at most {limit} characters"
            ));
        }
    }
    if let Some(old) = old {
        for field in IMMUTABLE {
            if old.get(field) != new.get(field) {
                errs.push(format!("{field}: Invalid value: field is immutable"));
            }
        }
    }
    if errs.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        422,
        "Invalid",
        format!(
            "Event.events.k8s.io {name:?} is invalid: [{}]",
            errs.join(", ")
        ),
    ))
}

fn text_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

/// A qualified name, as label keys are: an optional DNS-subdomain prefix
/// and `/`, then at most 63 characters of letters, digits, `-`, `_` and
/// `.`, starting and ending with a letter or digit.
fn is_qualified_name(s: &str) -> bool {
    let name = match s.split_once('/') {
        Some((prefix, name)) => {
            if !is_dns_subdomain(prefix) {
                return false;
            }
            name
        }
        None => s,
    };
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// RFC 1123 subdomain: at most 253 characters, dot-separated labels of
/// lowercase letters, digits and '-', each starting and ending alphanumeric.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
                && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn good() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "p.1a2b", "namespace": "ns"},
            "eventTime": "2026-12-06T14:00:00.000000Z",
            "type": "Warning", "reason": "FailedScheduling", "note": "waiting",
            "action": "Scheduling", "reportingController": "phalanx",
            "reportingInstance": "phalanx-0",
            "regarding": {"kind": "Pod", "namespace": "ns", "name": "p"},
        })
    }

    #[test]
    fn a_complete_event_is_accepted() {
        assert!(event_v1("ns", "p.1a2b", &good(), None).is_ok());
    }

    #[test]
    fn each_missing_or_oversized_field_is_named() {
        let cases: [(&str, Value, &str); 7] = [
            ("eventTime", Value::Null, "eventTime: Required value"),
            ("type", json!("Info"), "type: Invalid value"),
            (
                "reportingInstance",
                Value::Null,
                "reportingInstance: Required",
            ),
            ("action", json!("a".repeat(129)), "action: Invalid value"),
            ("note", json!("é".repeat(513)), "note: Invalid value"),
            ("series", json!({"count": 1}), "series.count"),
            ("deprecatedCount", json!(3), "deprecatedCount"),
        ];
        for (field, value, want) in cases {
            let mut ev = good();
            ev[field] = value;
            let err = event_v1("ns", "p.1a2b", &ev, None).unwrap_err();
            assert_eq!(err.code, 422);
            assert!(err.message.contains(want), "{field}: {}", err.message);
        }
        let err = event_v1("ns", "P_1", &good(), None).unwrap_err();
        assert!(err.message.contains("metadata.name"), "{}", err.message);
        for controller in ["phalanx.dev/scheduler", "Phalanx_1"] {
            let mut ev = good();
            ev["reportingController"] = json!(controller);
            assert!(event_v1("ns", "p.1a2b", &ev, None).is_ok(), "{controller}");
        }
        for controller in ["bad name", "-x", "a/b/c"] {
            let mut ev = good();
            ev["reportingController"] = json!(controller);
            let err = event_v1("ns", "p.1a2b", &ev, None).unwrap_err();
            assert!(
                err.message.contains("reportingController"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn an_update_may_change_the_series_only() {
        let old = good();
        let mut counted = good();
        counted["series"] = json!({"count": 2, "lastObservedTime": "2026-12-06T14:01:00.000000Z"});
        assert!(event_v1("ns", "p.1a2b", &counted, Some(&old)).is_ok());
        let mut renoted = counted.clone();
        renoted["note"] = json!("something else");
        let err = event_v1("ns", "p.1a2b", &renoted, Some(&old)).unwrap_err();
        assert!(
            err.message
                .contains("note: Invalid value: field is immutable"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_regarding_object_elsewhere_needs_its_namespace() {
        let mut ev = good();
        ev["regarding"] = json!({"kind": "Node", "name": "n0"});
        assert!(event_v1("ns", "p.1a2b", &ev, None).is_err());
        assert!(event_v1("default", "p.1a2b", &ev, None).is_ok());
    }
}
