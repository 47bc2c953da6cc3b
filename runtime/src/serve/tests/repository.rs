//! Health, metadata, the repository API (load, unload, hot swap, version
//! policies), downloads and the landing page.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;

use super::*;

#[tokio::test]
async fn health_metadata_and_index() {
    let f = fixture("").await;
    assert_eq!(get(&f.app, "/v2/health/live").await.status, 200);
    assert_eq!(get(&f.app, "/v2/health/ready").await.status, 200);
    let meta = get(&f.app, "/v2").await.json();
    assert_eq!(meta["name"], "kiln");
    let m = get(&f.app, "/v2/models/digits").await.json();
    assert_eq!(m["versions"], json!(["1"]));
    assert_eq!(
        m["inputs"][0],
        json!({"name": "input", "datatype": "FP32", "shape": [-1, 64]})
    );
    assert_eq!(m["outputs"][0]["shape"], json!([-1, 10]));
    assert_eq!(
        get(&f.app, "/v2/models/digits/versions/1").await.status,
        200
    );
    assert_eq!(get(&f.app, "/v2/models/digits/ready").await.status, 200);
    let index = post(&f.app, "/v2/repository/index", "{}").await.json();
    let names: Vec<&str> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["digits", "grow", "loop", "trap"]);
    let page = get(&f.app, "/").await;
    let html = String::from_utf8(page.body).unwrap();
    assert!(
        html.contains("digits") && html.contains("/v2/models/digits/infer"),
        "{html}"
    );
}

/// On SIGTERM readiness turns 503 first while requests are still served
/// (the drain period); once the listeners close, inferences are 503 too.
#[tokio::test]
async fn draining_server_is_503() {
    let f = fixture("").await;
    f.state.draining.store(true, Ordering::Relaxed);
    let r = get(&f.app, "/v2/health/ready").await;
    assert_eq!(r.status, 503);
    assert!(r.headers.contains_key("retry-after"));
    let body = digits_request(&some_rows(1));
    let r = post(&f.app, "/v2/models/digits/infer", body.clone()).await;
    assert_eq!(r.status, 200, "served while draining");
    f.state.closing.store(true, Ordering::Relaxed);
    let r = post(&f.app, "/v2/models/digits/infer", body).await;
    assert_eq!(r.status, 503);
    assert!(r.error().contains("shutting down"));
    assert_eq!(get(&f.app, "/v2/health/live").await.status, 200);
}

#[tokio::test]
async fn model_that_fails_to_load_is_503_and_server_not_ready() {
    let fx = fixture("").await;
    // A module importing a function: refused at load.
    let importing =
        wat::parse_str(r#"(module (import "env" "f" (func)) (memory (export "memory") 1))"#)
            .unwrap();
    write(&fx.repo, "bad.wasm", &importing);
    let r = post(&fx.app, "/v2/repository/models/bad/load", "").await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("imports `env::f`"), "{}", r.error());
    let r = post(&fx.app, "/v2/models/bad/infer", "{}").await;
    assert_eq!(r.status, 503);
    assert_eq!(get(&fx.app, "/v2/health/ready").await.status, 503);
    assert_eq!(get(&fx.app, "/v2/models/bad/ready").await.status, 503);
}

#[tokio::test]
async fn load_unload_and_failed_reload_keeps_serving() {
    let f = fixture("").await;
    let body = digits_request(&some_rows(1));
    assert_eq!(
        post(&f.app, "/v2/repository/models/digits/unload", "")
            .await
            .status,
        200
    );
    assert_eq!(
        post(&f.app, "/v2/models/digits/infer", body.clone())
            .await
            .status,
        404
    );
    let index = post(&f.app, "/v2/repository/index", "").await.json();
    assert_eq!(
        index[0],
        json!({"name": "digits", "state": "UNAVAILABLE", "reason": "unloaded"})
    );
    assert_eq!(
        post(
            &f.app,
            "/v2/repository/models/digits/load",
            "{\"parameters\": {}}"
        )
        .await
        .status,
        200
    );
    assert_eq!(
        post(&f.app, "/v2/models/digits/infer", body.clone())
            .await
            .status,
        200
    );

    // Version 2 is garbage: the load fails and version 1 keeps serving.
    write(&f.repo, "digits/2/model.wasm", b"\0asm\x01\0\0\0garbage");
    let r = post(&f.app, "/v2/repository/models/digits/load", "").await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("version 2"), "{}", r.error());
    let j = post(&f.app, "/v2/models/digits/infer", body.clone())
        .await
        .json();
    assert_eq!(j["model_version"], "1");

    // A good version 2 replaces version 1 (policy latest:1).
    write(&f.repo, "digits/2/model.wasm", &digits_wasm());
    assert_eq!(
        post(&f.app, "/v2/repository/models/digits/load", "")
            .await
            .status,
        200
    );
    let j = post(&f.app, "/v2/models/digits/infer", body.clone())
        .await
        .json();
    assert_eq!(j["model_version"], "2");
    assert_eq!(
        post(&f.app, "/v2/models/digits/versions/1/infer", body)
            .await
            .status,
        404
    );
    assert_eq!(
        post(&f.app, "/v2/repository/models/nothing/load", "")
            .await
            .status,
        404
    );
    assert_eq!(
        post(&f.app, "/v2/repository/models/nothing/unload", "")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn version_policy_serves_several_versions() {
    let f = fixture("[models.digits]\nversions = \"all\"\n").await;
    write(&f.repo, "digits/3/model.wasm", &digits_wasm());
    assert_eq!(
        post(&f.app, "/v2/repository/models/digits/load", "")
            .await
            .status,
        200
    );
    let m = get(&f.app, "/v2/models/digits").await.json();
    assert_eq!(m["versions"], json!(["1", "3"]));
    let body = digits_request(&some_rows(1));
    for v in ["1", "3"] {
        let j = post(
            &f.app,
            &format!("/v2/models/digits/versions/{v}/infer"),
            body.clone(),
        )
        .await
        .json();
        assert_eq!(j["model_version"], v);
    }
    let j = post(&f.app, "/v2/models/digits/infer", body).await.json();
    assert_eq!(j["model_version"], "3");
    // Every route's `/versions/{v}` twin (one handler each) finds the
    // version, and refuses one that is not loaded.
    for (v, status) in [("1", 200), ("3", 200), ("9", 404)] {
        for route in ["", "/ready", "/model.wasm"] {
            let uri = if route == "/model.wasm" {
                format!("/models/digits/versions/{v}{route}")
            } else {
                format!("/v2/models/digits/versions/{v}{route}")
            };
            assert_eq!(get(&f.app, &uri).await.status, status, "{uri}");
        }
    }
}

#[tokio::test]
async fn model_files_can_be_downloaded() {
    let f = fixture("").await;
    let r = get(&f.app, "/models/digits/model.wasm").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, digits_wasm());
    assert_eq!(r.headers["content-type"], "application/wasm");
    let r = get(&f.app, "/models/digits/versions/1/model.safetensors").await;
    assert_eq!(r.body, demo::DEMO_MODEL);
    assert_eq!(
        get(&f.app, "/models/trap/model.safetensors").await.status,
        404
    );
    assert_eq!(get(&f.app, "/models/digits/secret.txt").await.status, 404);
}

#[tokio::test]
async fn hot_swap_under_concurrent_load_loses_no_request() {
    let f = fixture("").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (app, stop) = (f.app.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let (mut ok, mut versions) = (0, std::collections::BTreeSet::new());
            while !stop.load(Ordering::Relaxed) {
                let r = post(
                    &app,
                    "/v2/models/digits/infer",
                    digits_request(&some_rows(1)),
                )
                .await;
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                versions.insert(r.json()["model_version"].as_str().unwrap().to_string());
                ok += 1;
            }
            (ok, versions)
        }));
    }
    for v in 2..=4 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        write(&f.repo, &format!("digits/{v}/model.wasm"), &digits_wasm());
        let r = post(&f.app, "/v2/repository/models/digits/load", "").await;
        assert_eq!(r.status, 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    for c in clients {
        let (ok, versions) = c.await.unwrap();
        total += ok;
        seen.extend(versions);
    }
    assert!(total > 50, "only {total} requests");
    assert!(seen.contains("1") && seen.contains("4"), "{seen:?}");
}

#[tokio::test]
async fn static_dir_replaces_the_page() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>demo page</p>").unwrap();
    let config = Config::parse(
        &format!(
            "[server]\ncache_dir = {:?}\ninstances = 4\n",
            dir.path().join("c")
        ),
        Path::new("k"),
    )
    .unwrap();
    let s = prepare(&Options {
        model_name: None,
        repo: None,
        http: "127.0.0.1:0".parse().unwrap(),
        grpc: None,
        config,
        watch: false,
        static_dir: Some(dir.path().into()),
        config_path: None,
    })
    .await
    .unwrap();
    let app = router::router(s);
    let r = get(&app, "/").await;
    assert_eq!(String::from_utf8(r.body).unwrap(), "<p>demo page</p>");
    // The built-in demo model is served as `digits`.
    assert_eq!(get(&app, "/v2/models/digits/ready").await.status, 200);
    assert_eq!(get(&app, "/index.html").await.status, 200);
}

/// A repository file that is a symbolic link (here to a host file outside
/// the repository) is refused at load, so it is never served; so is a file
/// over its cap.
#[cfg(unix)]
#[tokio::test]
async fn repository_files_are_not_links_and_are_capped() {
    let f = fixture("[models.big]\nmodel_file_mib = 1\n").await;
    let secret = f.repo.parent().unwrap().join("kiln-secret.toml");
    std::fs::write(&secret, "key = \"admin-key-0123456789\"").unwrap();
    write(&f.repo, "leak/1/model.wasm", &digits_wasm());
    std::os::unix::fs::symlink(&secret, f.repo.join("leak/1/model.safetensors")).unwrap();
    let r = post(&f.app, "/v2/repository/models/leak/load", "").await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error().contains("is a symbolic link"), "{}", r.error());
    let r = get(&f.app, "/models/leak/model.safetensors").await;
    assert_ne!(r.status, 200);
    assert!(!String::from_utf8_lossy(&r.body).contains("admin-key"));

    // A model folder linked from elsewhere.
    let elsewhere = f.repo.parent().unwrap().join("elsewhere");
    write(&elsewhere, "1/model.wasm", &digits_wasm());
    std::os::unix::fs::symlink(&elsewhere, f.repo.join("linked")).unwrap();
    let r = post(&f.app, "/v2/repository/models/linked/load", "").await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error().contains("is a symbolic link"), "{}", r.error());

    write(&f.repo, "big/1/model.wasm", &digits_wasm());
    write(&f.repo, "big/1/model.safetensors", &vec![0; (1 << 20) + 1]);
    let r = post(&f.app, "/v2/repository/models/big/load", "").await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.error().contains("over the 1048576-byte cap"),
        "{}",
        r.error()
    );
}

/// In poll mode (`--watch`) the repository directory decides, and with
/// model control off nothing changes: the repository API refuses load and
/// unload (so a poll can no longer undo an admin's unload).
#[tokio::test]
async fn model_control_poll_and_none_refuse_load_and_unload() {
    for (mode, needle) in [
        ("poll", "polls the repository"),
        ("none", "model control is off"),
    ] {
        let server = format!("instances = 16\nmodel_control = \"{mode}\"\n");
        let f = fixture_with(&server, "").await;
        for action in ["load", "unload"] {
            let r = post(
                &f.app,
                &format!("/v2/repository/models/digits/{action}"),
                "",
            )
            .await;
            assert_eq!(r.status, 409, "{mode} {action}");
            assert!(r.error().contains(needle), "{}", r.error());
        }
        let r = post(
            &f.app,
            "/v2/models/digits/infer",
            digits_request(&some_rows(1)),
        )
        .await;
        assert_eq!(r.status, 200);
    }
}

/// Loading a model whose files were deleted unloads it (as Triton does)
/// instead of leaving the old version serving.
#[tokio::test]
async fn loading_a_deleted_model_unloads_it() {
    let f = fixture("").await;
    std::fs::remove_dir_all(f.repo.join("digits")).unwrap();
    let r = post(&f.app, "/v2/repository/models/digits/load", "").await;
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    let r = post(
        &f.app,
        "/v2/models/digits/infer",
        digits_request(&some_rows(1)),
    )
    .await;
    assert_eq!(r.status, 404);
}

/// A module of 1,000,000 instructions (no exports): its compile takes a
/// while.
fn slow_to_compile() -> Vec<u8> {
    use wasm_encoder::{CodeSection, Function, FunctionSection, Instruction, TypeSection, ValType};
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], []);
    let (mut funcs, mut code) = (FunctionSection::new(), CodeSection::new());
    for _ in 0..250 {
        funcs.function(0);
        let mut f = Function::new([]);
        for _ in 0..1000 {
            f.instruction(&Instruction::LocalGet(0))
                .instruction(&Instruction::I32Const(1))
                .instruction(&Instruction::I32Add)
                .instruction(&Instruction::LocalSet(0));
        }
        f.instruction(&Instruction::End);
        code.function(&f);
    }
    let mut module = wasm_encoder::Module::new();
    module.section(&types).section(&funcs).section(&code);
    module.finish()
}

/// A compile runs outside any lock other models need: unloading `digits`
/// does not wait for `big` to compile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_compile_blocks_no_other_model() {
    let f = fixture("").await;
    write(&f.repo, "big.wasm", &slow_to_compile());
    let app = f.app.clone();
    let load = tokio::spawn(async move {
        let r = post(&app, "/v2/repository/models/big/load", "").await;
        (r.status, std::time::Instant::now())
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let r = post(&f.app, "/v2/repository/models/digits/unload", "").await;
    let unloaded = std::time::Instant::now();
    assert_eq!(r.status, 200);
    let (status, loaded) = load.await.unwrap();
    // `big` has no ABI exports: refused, but only once compiled.
    assert_eq!(status, 400);
    assert!(
        unloaded < loaded,
        "the unload waited for another model's compile"
    );
}

/// A compile that takes longer than `compile_timeout_ms` fails the load.
#[tokio::test]
async fn a_compile_past_its_timeout_fails_the_load() {
    let f = fixture("[models.big]\ncompile_timeout_ms = 1\n").await;
    write(&f.repo, "big.wasm", &slow_to_compile());
    let r = post(&f.app, "/v2/repository/models/big/load", "").await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error().contains("compile_timeout_ms"), "{}", r.error());
}

/// A version directory may hold a Keras or ONNX model instead of a module:
/// imported and built on load (the imported model file offered for
/// download); a bad one is refused at load like a bad module.
#[tokio::test]
async fn keras_models_are_built_on_load() {
    let f = fixture("").await;
    let keras = |name: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/data/keras")
                .join(name),
        )
        .unwrap()
    };
    write(&f.repo, "mlp/1/model.keras", &keras("mlp.keras"));
    write(&f.repo, "mlph5/3/model.h5", &keras("mlp.h5"));
    for name in ["mlp", "mlph5"] {
        let r = post(&f.app, &format!("/v2/repository/models/{name}/load"), "").await;
        assert_eq!(r.status, 200, "{}", r.error());
        let body = json!({"inputs": [{"name": "input_layer", "shape": [1, 64],
            "datatype": "FP32", "data": vec![1.0; 64]}]});
        let r = post(
            &f.app,
            &format!("/v2/models/{name}/infer"),
            body.to_string(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.error());
        assert_eq!(r.json()["outputs"][0]["shape"], json!([1, 10]));
    }
    let r = get(&f.app, "/models/mlp/versions/1/model.safetensors").await;
    assert_eq!(r.status, 200);
    write(&f.repo, "lam/1/model.keras", &keras("lambda.keras"));
    let r = post(&f.app, "/v2/repository/models/lam/load", "").await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("(Lambda)"), "{}", r.error());
}
