//! The landing page at `/`: what is served and how to call it.
//!
//! Anyone who reaches the port may read it, so with API keys configured it
//! names no model, version or failure reason (those are for keys: model
//! metadata, and the admin-only repository index).

use std::fmt::Write;

use super::state::AppState;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The landing page: what is served and how to call it.
pub(crate) fn page(s: &AppState) -> String {
    let http = s
        .http_addr
        .get()
        .map_or("127.0.0.1:8000".into(), |a| a.to_string());
    let mut rows = String::new();
    let mut example = None;
    let listed = if s.auth.enabled() {
        rows.push_str(
            "<tr><td colspan=\"5\">API keys are configured: the models are listed \
             by <code>POST /v2/repository/index</code> with an admin key.</td></tr>",
        );
        Vec::new()
    } else {
        s.registry.index()
    };
    for e in listed {
        let meta = s.registry.get(&e.name, Some(&e.version)).ok();
        let sig = meta.as_ref().map_or(String::new(), |v| {
            format!(
                "{} {:?} → {} {:?}",
                v.meta.input.name, v.meta.input.shape, v.meta.output.name, v.meta.output.shape
            )
        });
        if example.is_none() {
            example = meta.clone();
        }
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.name),
            esc(&e.version),
            e.state,
            esc(&sig),
            esc(&e.reason)
        );
    }
    let call = example.map_or(String::new(), |v| {
        let zeros = vec!["0"; v.row_len()].join(",");
        format!(
            "curl -s http://{http}/v2/models/{name}/infer \\\n  -H 'Content-Type: application/json' \\\n  -d '{{\"inputs\":[{{\"name\":\"{input}\",\"datatype\":\"FP32\",\"shape\":[1,{shape}],\"data\":[{zeros}]}}]}}'",
            name = v.name,
            input = v.meta.input.name,
            shape = v
                .meta
                .input
                .shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(","),
        )
    });
    let grpc = s.grpc_addr.get().map_or("off".into(), |a| a.to_string());
    let auth = if s.auth.enabled() {
        "API keys are required: send <code>Authorization: Bearer KEY</code>."
    } else {
        "No API keys are configured; the server listens on loopback only."
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kiln serve</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}
pre{{background:#f4f4f4;padding:1em;overflow-x:auto}}</style></head><body>
<h1>kiln serve</h1>
<p>Sandboxed WebAssembly models behind the KServe v2 protocol: REST on <code>http://{http}/v2</code>,
gRPC (<code>inference.GRPCInferenceService</code>) on <code>{grpc}</code>. {auth}</p>
<h2>Models</h2>
<table><tr><th>name</th><th>version</th><th>state</th><th>signature (one row)</th><th>note</th></tr>{rows}</table>
<h2>Call it</h2>
<pre>{call}</pre>
<p>Metadata: <code>GET /v2/models/NAME</code>. Health: <code>GET /v2/health/ready</code>.
Repository: <code>POST /v2/repository/index</code>, <code>…/models/NAME/load</code>, <code>…/unload</code>.
Metrics: <a href="/metrics">/metrics</a>. Download a module: <code>GET /models/NAME/model.wasm</code>
(and <code>model.safetensors</code> when the repository has it).
Python: <code>tritonclient.http.InferenceServerClient("{http}")</code>.</p>
</body></html>
"#,
        call = esc(&call),
    )
}
