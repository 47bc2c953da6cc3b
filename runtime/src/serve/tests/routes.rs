//! `docs/openapi.yaml`: served as committed at `/openapi.yaml`, and
//! describing exactly the routes the router has.

use std::collections::BTreeSet;

use super::*;
use crate::serve::router::{OPENAPI, routes};

/// `{m}` and `{model}` alike: a path with its parameters unnamed.
fn unnamed(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// The (method, path) operations under the document's `paths:` (two-space
/// indented paths, four-space indented methods).
fn documented(yaml: &str) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    let mut path = None;
    let mut in_paths = false;
    for line in yaml.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = Some(format!("/{}", p.trim_end_matches(':')));
        } else if let Some(m) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':'))
            && ["get", "post", "put", "delete", "patch", "head"].contains(&m)
        {
            let p = path.clone().expect("a method under a path");
            ops.insert((m.to_uppercase(), unnamed(&p)));
        }
    }
    ops
}

#[tokio::test]
async fn openapi_is_served_as_committed() {
    let f = fixture("[[keys]]\nkey = \"admin-key-0123456789\"\nadmin = true\n").await;
    let file = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml")).unwrap();
    // Open to anyone, like `/`: it names no model.
    let r = get(&f.app, "/openapi.yaml").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/yaml");
    assert!(
        r.body == file,
        "GET /openapi.yaml differs from docs/openapi.yaml"
    );
}

#[test]
fn openapi_lists_every_route_of_the_router() {
    let mut served: BTreeSet<(String, String)> = routes()
        .into_iter()
        .map(|(path, method, _)| (method.to_string(), unnamed(path)))
        .collect();
    assert_eq!(served.len(), routes().len(), "a path or method twice");
    // `router` adds the landing page (or the --static directory) at `/`.
    served.insert(("GET".into(), "/".into()));
    let documented = documented(OPENAPI);
    assert!(documented.len() > 10, "{documented:?}");
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/openapi.yaml lacks {missing:?} and lists {extra:?}, which the router does not serve"
    );
}
