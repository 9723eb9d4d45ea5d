//! The HTTP face of the test server: Kubernetes REST paths, list/watch, discovery.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::Shared;
use super::resources::{self, ResourceType};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{ApiError, Change, ChangeType};

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(err: &ApiError) -> Response {
    json_response(err.code, &err.to_status())
}

/// A parsed resource URL.
struct Target {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

enum Route {
    Discovery(Value),
    Resource(Target),
}

fn route(shared: &Shared, path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let types = shared
        .store
        .lock()
        .map(|s| s.types.clone())
        .unwrap_or_default();
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    };
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => {
            return Ok(Route::Discovery(json!({
                "major": "1", "minor": "35", "gitVersion": "v1.35.0-phalanx-test",
                "platform": "linux/amd64", "goVersion": "go1.24", "compiler": "gc",
                "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
            })));
        }
        ["api"] => return Ok(Route::Discovery(resources::core_versions())),
        ["apis"] => return Ok(Route::Discovery(resources::group_list(&types))),
        ["api", v] => {
            return resources::resource_list(&types, "", v)
                .map(Route::Discovery)
                .ok_or_else(not_found);
        }
        ["apis", g, v] => {
            return resources::resource_list(&types, g, v)
                .map(Route::Discovery)
                .ok_or_else(not_found);
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found()),
    };
    let find = |plural: &str| {
        types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
            .ok_or_else(not_found)
    };
    let owned = |s: Option<&&str>| s.map(|s| s.to_string());
    let target = match rest {
        ["namespaces", ns, plural, tail @ ..] if group.is_empty() || find(plural).is_ok() => {
            let rt = find(plural)?;
            if !rt.namespaced {
                return Err(not_found());
            }
            Target {
                rt,
                namespace: Some(ns.to_string()),
                name: owned(tail.first()),
                subresource: owned(tail.get(1)),
            }
        }
        [plural, tail @ ..] => Target {
            rt: find(plural)?,
            namespace: None,
            name: owned(tail.first()),
            subresource: owned(tail.get(1)),
        },
        [] => return Err(not_found()),
    };
    Ok(Route::Resource(target))
}

/// The single handler behind every path.
pub(super) async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> = Query::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = match axum::body::to_bytes(req.into_body(), 64 << 20).await {
        Ok(b) => b,
        Err(e) => {
            return error_response(&ApiError::new(
                400,
                "BadRequest",
                format!("reading body: {e}"),
            ));
        }
    };
    let target = match route(&shared, &path) {
        Ok(Route::Discovery(doc)) if method == Method::GET => return json_response(200, &doc),
        Ok(Route::Discovery(_)) => {
            return error_response(&ApiError::new(
                405,
                "MethodNotAllowed",
                "discovery is read-only",
            ));
        }
        Ok(Route::Resource(t)) => t,
        Err(e) => return error_response(&e),
    };
    let is_watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = match (&method, target.name.is_some()) {
        (&Method::GET, false) if is_watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        _ => {
            return error_response(&ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{method} is not supported on {path}"),
            ));
        }
    };
    let resource = match &target.subresource {
        Some(sub) => format!("{}/{sub}", target.rt.plural),
        None => target.rt.plural.clone(),
    };
    if let Some(d) = shared.delay(verb, &resource) {
        tokio::time::sleep(d).await;
    }
    if let Some(err) = shared.take_fault(
        &target.rt.group,
        verb,
        &resource,
        target.namespace.as_deref(),
        target.name.as_deref(),
    ) {
        return error_response(&err);
    }
    let result = match verb {
        "watch" => return watch(shared, target, &query),
        "list" => list(&shared, &target, &query),
        _ => write(&shared, verb, &target, &content_type, &body, &query),
    };
    match result {
        Ok((code, v)) => json_response(code, &v),
        Err(e) => error_response(&e),
    }
}

fn selectors(query: &HashMap<String, String>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let bad = |e: String| ApiError::new(400, "BadRequest", e);
    let labels = LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(bad)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(bad)?;
    Ok((labels, fields))
}

fn list(
    shared: &Shared,
    t: &Target,
    query: &HashMap<String, String>,
) -> Result<(u16, Value), ApiError> {
    let (labels, fields) = selectors(query)?;
    let store = shared.lock();
    let (items, rv) = store.list(&t.rt, t.namespace.as_deref(), &labels, &fields);
    // `limit` is ignored: returning everything without a continue token is a valid answer.
    Ok((
        200,
        json!({
            "kind": format!("{}List", t.rt.kind), "apiVersion": t.rt.api_version(),
            "metadata": {"resourceVersion": rv.to_string()}, "items": items,
        }),
    ))
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, "BadRequest", format!("decoding body: {e}")))
}

fn write(
    shared: &Shared,
    verb: &str,
    t: &Target,
    content_type: &str,
    body: &Bytes,
    query: &HashMap<String, String>,
) -> Result<(u16, Value), ApiError> {
    let ns = t.namespace.as_deref().unwrap_or("");
    if t.rt.namespaced && t.namespace.is_none() {
        return Err(ApiError::new(
            404,
            "NotFound",
            format!("{} are namespaced", t.rt.plural),
        ));
    }
    let sub = t.subresource.as_deref();
    let status_only = match sub {
        None => false,
        Some("status") if t.rt.status_subresource => true,
        Some("binding") if t.rt.plural == "pods" && t.rt.group.is_empty() && verb == "create" => {
            false
        }
        Some(other) => {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!("no subresource {other} on {}", t.rt.plural),
            ));
        }
    };
    let name = t.name.as_deref().unwrap_or("");
    let dry_run = query.contains_key("dryRun");
    let mut store = shared.lock();
    match verb {
        "get" => store.get(&t.rt, ns, name).map(|v| (200, v)),
        "create" if sub == Some("binding") => {
            let binding = parse_body(body)?;
            let node = binding
                .pointer("/target/name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ApiError::new(422, "Invalid", "target.name: Required value"))?;
            store.bind(ns, name, node)?;
            Ok((
                201,
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        "create" => {
            let obj = parse_body(body)?;
            if dry_run {
                return Ok((201, obj));
            }
            store.create(&t.rt, ns, obj).map(|v| (201, v))
        }
        "update" => store
            .replace(&t.rt, ns, name, parse_body(body)?, status_only)
            .map(|v| (200, v)),
        "patch" => {
            let patch = parse_body(body)?;
            let mime = content_type.split(';').next().unwrap_or("").trim();
            let create = match mime {
                "application/strategic-merge-patch+json" => {
                    let existed = store.get(&t.rt, ns, name).is_ok();
                    return store
                        .strategic_patch(&t.rt, ns, name, &patch, status_only)
                        .map(|v| (if existed { 200 } else { 201 }, v));
                }
                "application/merge-patch+json" => false,
                "application/apply-patch+yaml" => true,
                other => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!("the body of the request was in an unknown format: {other}"),
                    ));
                }
            };
            let existed = store.get(&t.rt, ns, name).is_ok();
            store
                .patch(&t.rt, ns, name, &patch, status_only, create)
                .map(|v| (if existed { 200 } else { 201 }, v))
        }
        "delete" => {
            // DeleteOptions come in the body (kube-rs, client-go) or as query parameters.
            let mut options = if body.is_empty() {
                json!({})
            } else {
                parse_body(body)?
            };
            if let Some(g) = query.get("gracePeriodSeconds") {
                let g: i64 = g.parse().map_err(|_| {
                    ApiError::new(
                        400,
                        "BadRequest",
                        format!("invalid gracePeriodSeconds {g:?}"),
                    )
                })?;
                options["gracePeriodSeconds"] = json!(g);
            }
            store
                .delete_with(&t.rt, ns, name, &options)
                .map(|v| (200, v))
        }
        _ => Err(ApiError::new(405, "MethodNotAllowed", verb.to_string())),
    }
}

/// Whether a change is visible to a watch with this namespace and selectors, before and after.
fn visible(t: &Target, labels: &LabelSelector, fields: &FieldSelector, obj: &Value) -> bool {
    let in_ns = match &t.namespace {
        Some(ns) => obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns.as_str()),
        None => true,
    };
    in_ns && labels.matches(obj) && fields.matches(obj)
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn watch(shared: Arc<Shared>, t: Target, query: &HashMap<String, String>) -> Response {
    let (labels, fields) = match selectors(query) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let bookmarks = matches!(
        query.get("allowWatchBookmarks").map(String::as_str),
        Some("true" | "1")
    );
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800))
        .min(shared.max_watch_timeout.unwrap_or(Duration::MAX));
    let requested_rv = query
        .get("resourceVersion")
        .filter(|s| !s.is_empty() && *s != "0");
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    // Initial state under one lock: either a replay from the requested version or,
    // without one, synthetic ADDED events for the current objects.
    let start = {
        let store = shared.lock();
        let from = match requested_rv {
            Some(rv) => rv.parse::<u64>().map_err(|_| {
                ApiError::new(400, "BadRequest", format!("invalid resourceVersion {rv:?}"))
            }),
            None => Ok(store.resource_version()),
        };
        match from.and_then(|from| store.watch_from(&t.rt, from).map(|w| (from, w))) {
            Ok((from, (backlog, live))) => {
                let mut initial: Vec<Bytes> = Vec::new();
                if requested_rv.is_none() {
                    let (items, _) = store.list(&t.rt, t.namespace.as_deref(), &labels, &fields);
                    initial.extend(items.iter().map(|o| event_line("ADDED", o)));
                }
                Ok((from, backlog, live, initial))
            }
            Err(e) => Err(e),
        }
    };
    let kind = t.rt.kind.clone();
    let api_version = t.rt.api_version();
    let key = t.rt.key();
    let bookmark_every = shared.bookmark_interval;
    tokio::spawn(async move {
        let (mut last, backlog, mut live, initial) = match start {
            Ok(s) => s,
            Err(e) => {
                // A real API server reports a stale version inside a 200 watch stream.
                let _ = tx.send(Ok(event_line("ERROR", &e.to_status()))).await;
                return;
            }
        };
        let emit = |c: &Change| -> Option<Bytes> {
            let now = visible(&t, &labels, &fields, &c.object);
            let before = c
                .old
                .as_ref()
                .is_some_and(|o| visible(&t, &labels, &fields, o));
            let kind = match (c.kind, before, now) {
                (ChangeType::Added, _, true) => "ADDED",
                (ChangeType::Modified, true, true) => "MODIFIED",
                (ChangeType::Modified, false, true) => "ADDED",
                (ChangeType::Modified, true, false) => "DELETED",
                (ChangeType::Deleted, _, true) => "DELETED",
                _ => return None,
            };
            Some(event_line(kind, &c.object))
        };
        for line in initial {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        for c in &backlog {
            last = last.max(c.rv);
            if let Some(line) = emit(c)
                && tx.send(Ok(line)).await.is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(bookmark_every);
        tick.tick().await;
        loop {
            let line = tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = tick.tick(), if bookmarks => {
                    event_line("BOOKMARK", &json!({
                        "kind": kind, "apiVersion": api_version,
                        "metadata": {"resourceVersion": last.to_string()},
                    }))
                }
                got = live.recv() => match got {
                    Ok(c) if c.rv <= last => continue,
                    Ok(c) => {
                        last = c.rv;
                        if c.resource != key {
                            continue;
                        }
                        match emit(&c) {
                            Some(line) => line,
                            None => continue,
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let gone = ApiError::new(410, "Expired", "watch fell behind; re-list");
                        let _ = tx.send(Ok(event_line("ERROR", &gone.to_status()))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
            };
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
