//! PodDisruptionBudgets (`policy/v1`) as the gang core reads them when it
//! chooses preemption victims: the selector and `status.disruptionsAllowed`
//! (computed by the disruption controller; a budget without a status allows
//! nothing yet, as kube-scheduler reads it).

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use phalanx_gang as gang;

use crate::convert::FieldError;

fn field_error(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// A `metav1.LabelSelector`, checked: only In, NotIn, Exists and
/// DoesNotExist are label-selector operators; In and NotIn need values.
pub fn label_selector(
    s: &meta::LabelSelector,
    path: &str,
) -> Result<gang::LabelSelector, FieldError> {
    let mut out = gang::LabelSelector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions: Vec::new(),
    };
    for (i, r) in s.match_expressions.iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        let values = r.values.clone().unwrap_or_default();
        let operator = match r.operator.as_str() {
            "In" => gang::SelectorOperator::In,
            "NotIn" => gang::SelectorOperator::NotIn,
            "Exists" => gang::SelectorOperator::Exists,
            "DoesNotExist" => gang::SelectorOperator::DoesNotExist,
            other => {
                return Err(field_error(
                    format!("{at}.operator"),
                    format!(
                        "{other:?} is not a label selector operator (In, NotIn, Exists, DoesNotExist)"
                    ),
                ));
            }
        };
        let needs_values = matches!(
            operator,
            gang::SelectorOperator::In | gang::SelectorOperator::NotIn
        );
        if needs_values == values.is_empty() {
            return Err(field_error(
                format!("{at}.values"),
                if needs_values {
                    "must be non-empty for In and NotIn"
                } else {
                    "must be empty for Exists and DoesNotExist"
                },
            ));
        }
        out.match_expressions.push(gang::SelectorRequirement {
            key: r.key.clone(),
            operator,
            values,
        });
    }
    Ok(out)
}

/// A PodDisruptionBudget in the core's terms. A budget with no selector
/// selects nothing, an empty one every pod of its namespace (policy/v1).
/// A negative `disruptionsAllowed` counts as none.
pub fn budget(pdb: &PodDisruptionBudget) -> Result<gang::DisruptionBudget, FieldError> {
    let selector = pdb
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .map(|s| label_selector(s, "spec.selector"))
        .transpose()?;
    let allowed = pdb.status.as_ref().map_or(0, |s| s.disruptions_allowed);
    Ok(gang::DisruptionBudget {
        namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
        name: pdb.metadata.name.clone().unwrap_or_default(),
        selector,
        disruptions_allowed: u32::try_from(allowed).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn pdb(v: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_and_allowed_disruptions() {
        let b = budget(&pdb(json!({
            "metadata": {"name": "train", "namespace": "ml"},
            "spec": {"selector": {"matchLabels": {"app": "train"},
                                  "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}},
            "status": {"disruptionsAllowed": 1, "currentHealthy": 4, "desiredHealthy": 3, "expectedPods": 4},
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((b.namespace.as_str(), b.name.as_str()), ("ml", "train"));
        assert_eq!(b.disruptions_allowed, 1);
        let s = b.selector.unwrap_or_default();
        assert!(s.matches(&labels(&[("app", "train")])));
        assert!(!s.matches(&labels(&[("app", "train"), ("tier", "web")])));
        assert!(!s.matches(&labels(&[("app", "serve")])));
    }

    #[test]
    fn missing_status_allows_nothing_and_missing_selector_selects_nothing() {
        let b = budget(&pdb(json!({
            "metadata": {"name": "b", "namespace": "ml"},
            "spec": {"minAvailable": 1},
            "status": {"disruptionsAllowed": -2, "currentHealthy": 0, "desiredHealthy": 1, "expectedPods": 0},
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.disruptions_allowed, 0);
        assert_eq!(b.selector, None);
        let empty = budget(&pdb(json!({
            "metadata": {"name": "all", "namespace": "ml"},
            "spec": {"selector": {}},
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(empty.disruptions_allowed, 0);
        assert!(
            empty
                .selector
                .unwrap_or_default()
                .matches(&labels(&[("x", "y")]))
        );
    }

    #[test]
    fn bad_selectors_name_the_field() {
        let gt = budget(&pdb(json!({
            "metadata": {"name": "b", "namespace": "ml"},
            "spec": {"selector": {"matchExpressions": [{"key": "n", "operator": "Gt", "values": ["1"]}]}},
        })));
        assert_eq!(
            gt.map_err(|e| e.field),
            Err("spec.selector.matchExpressions[0].operator".to_string())
        );
        let no_values = budget(&pdb(json!({
            "metadata": {"name": "b", "namespace": "ml"},
            "spec": {"selector": {"matchExpressions": [{"key": "n", "operator": "In"}]}},
        })));
        assert_eq!(
            no_values.map_err(|e| e.field),
            Err("spec.selector.matchExpressions[0].values".to_string())
        );
    }
}
