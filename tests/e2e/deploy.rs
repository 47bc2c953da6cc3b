//! The deployment files agree with each other: the Dockerfile (built where
//! registries are reachable) and scripts/image.sh (built offline here) give
//! the image the same entrypoint, command, ports, user and environment.
//! (tests/deploy/run.sh checks the image image.sh actually built.)

use std::collections::BTreeSet;

const DOCKERFILE: &str = include_str!("../../Dockerfile");
const IMAGE_SH: &str = include_str!("../../scripts/image.sh");

/// The image config one file declares.
#[derive(Debug, PartialEq)]
struct ImageConfig {
    entrypoint: serde_json::Value,
    cmd: serde_json::Value,
    ports: BTreeSet<u16>,
    user: String,
    env: BTreeSet<String>,
}

/// The final stage's instructions (after the last `FROM`), continuation
/// lines joined.
fn final_stage(dockerfile: &str) -> Vec<(String, String)> {
    let joined = dockerfile.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("the Dockerfile has a FROM");
    lines[last_from..]
        .iter()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_string(), v.trim().to_string())
        })
        .collect()
}

fn dockerfile_config() -> ImageConfig {
    let stage = final_stage(DOCKERFILE);
    assert_eq!(stage[0].1, "scratch", "the final stage is FROM scratch");
    let one = |key: &str| -> String {
        let found: Vec<&String> = stage
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(found.len(), 1, "one {key} in the Dockerfile's final stage");
        found[0].clone()
    };
    let json = |key: &str| -> serde_json::Value {
        serde_json::from_str(&one(key))
            .unwrap_or_else(|e| panic!("Dockerfile {key}: exec form: {e}"))
    };
    ImageConfig {
        entrypoint: json("ENTRYPOINT"),
        cmd: json("CMD"),
        ports: one("EXPOSE")
            .split_whitespace()
            .map(|p| p.parse().expect("EXPOSE port"))
            .collect(),
        user: one("USER"),
        env: one("ENV").split_whitespace().map(str::to_string).collect(),
    }
}

fn image_sh_config() -> ImageConfig {
    let var = |name: &str| -> String {
        let prefix = format!("{name}=");
        let line = IMAGE_SH
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("scripts/image.sh sets {name}"));
        let v = &line[prefix.len()..];
        v.trim_matches(|c| c == '\'' || c == '"').to_string()
    };
    let json = |name: &str| -> serde_json::Value {
        serde_json::from_str(&var(name)).unwrap_or_else(|e| panic!("image.sh {name}: {e}"))
    };
    ImageConfig {
        entrypoint: json("ENTRYPOINT"),
        cmd: json("CMD"),
        ports: var("PORTS")
            .split_whitespace()
            .map(|p| p.parse().expect("PORTS"))
            .collect(),
        user: var("USER_ID"),
        env: var("ENV_VARS")
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    }
}

#[test]
fn dockerfile_and_image_sh_agree() {
    let (docker, script) = (dockerfile_config(), image_sh_config());
    assert_eq!(docker, script);
    // What the issue asks the image to default to, and what the ports are.
    let args: Vec<&str> = [&docker.entrypoint, &docker.cmd]
        .iter()
        .flat_map(|v| v.as_array().expect("exec form").iter())
        .map(|v| v.as_str().expect("strings"))
        .collect();
    assert_eq!(
        args[..7],
        [
            "/usr/local/bin/kiln",
            "serve",
            "/mnt/models",
            "--http",
            "0.0.0.0:8080",
            "--grpc",
            "0.0.0.0:8081"
        ]
    );
    assert_eq!(docker.ports, BTreeSet::from([8080, 8081]));
    assert!(!docker.user.starts_with("0") && !docker.user.starts_with("root"));
}

#[test]
fn the_image_cmd_parses() {
    // `kiln serve --help` accepts every flag of the image's command (a flag
    // renamed in the CLI but not in the image would only fail at run time).
    let cfg = image_sh_config();
    let help = crate::common::kiln_ok(&["serve", "--help"]);
    for flag in cfg
        .cmd
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
    {
        if flag.starts_with("--") {
            assert!(help.contains(flag), "`kiln serve` has no {flag}");
        }
    }
}
