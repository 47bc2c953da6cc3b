//! `kiln predict`: run a model module (or model file) on rows of input.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use kiln::model::{ModelFile, Task};
use kiln::module::{self, ModuleMeta};
use kiln::sandbox::{Limits, Sandbox};
use kiln::{data, train};

/// Predict rows with a model module, printing one JSON line per row.
///
/// Input is a JSON array of rows (`[[…], […]]`) or a CSV file with a header
/// line; `-` reads standard input. CSV columns are matched to the model's
/// feature names when it has them; the target column is ignored.
///
/// Each output line is `{"class": i, "label": "…", "scores": […]}` for a
/// classifier and `{"value": v, "scores": […]}` for a regression model.
/// Scores print in the shortest form that reads back to the same f32 bits.
///
/// The module runs in wasmtime with no imports, a memory cap and a deadline;
/// `--native` runs the same kernel natively instead (same bits). A model file
/// (.safetensors) can be given too and always runs natively.
///
/// `--stream` feeds a recurrent model (input `[steps, features]`) one time
/// step per input line, batch 1: from the `steps`-th line on, every line
/// predicts the last `steps` steps and prints its answer at once.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kiln predict digits.wasm --input rows.csv\n  kiln predict digits.wasm --input rows.csv --key signer.pub   # verify first"
)]
pub(super) struct Args {
    /// Model module (.wasm) or model file (.safetensors).
    module: PathBuf,
    /// Rows to predict: a JSON array of rows or a CSV file; `-` for stdin.
    #[arg(long, short)]
    input: PathBuf,
    /// Run the kernel natively instead of in wasmtime.
    #[arg(long)]
    native: bool,
    /// Rows per call into the module (default: all rows in one call).
    #[arg(long, conflicts_with = "stream")]
    batch: Option<usize>,
    /// Read time steps, not rows: each non-empty input line is one step of a
    /// `[steps, features]` model (`features` numbers, comma-separated or as
    /// a JSON array); each line from the `steps`-th on predicts the last
    /// `steps` steps, printed as soon as the line is read (`-`: stdin).
    #[arg(long)]
    stream: bool,
    /// Memory cap for the module, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mib: usize,
    /// Deadline for one call into the module, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Verify the module's signature first, with this public key (NAME.pub
    /// from `kiln keygen`, PEM/DER, or a directory of `*.pub`; repeat for
    /// several): an unsigned, changed or foreign-signed module is refused
    /// before it runs (see `kiln verify`).
    #[arg(long, value_name = "PUBLIC")]
    key: Vec<PathBuf>,
}

/// Runs one batch of rows (row-major) and returns their scores.
type Runner = Box<dyn FnMut(&[f32]) -> anyhow::Result<Vec<f32>>>;

/// What the output lines need to know about the model.
struct Signature {
    task: Task,
    width: usize,
    /// The input's row shape (`[steps, features]` for recurrent models).
    shape: Vec<usize>,
    labels: Vec<String>,
    features: Vec<String>,
    target: Option<String>,
    /// The features where a missing value (NaN) is accepted.
    missing: Vec<usize>,
}

impl From<&ModuleMeta> for Signature {
    fn from(m: &ModuleMeta) -> Self {
        Signature {
            task: m.task,
            width: m.input.shape.iter().product(),
            shape: m.input.shape.clone(),
            labels: m.labels.clone(),
            features: m.features.clone(),
            target: m.target.clone(),
            missing: m.missing.clone(),
        }
    }
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    if a.batch == Some(0) {
        bail!("--batch must be at least 1");
    }
    let bytes =
        std::fs::read(&a.module).with_context(|| format!("reading {}", a.module.display()))?;
    let is_wasm = bytes.starts_with(b"\0asm");
    if !a.key.is_empty() {
        anyhow::ensure!(
            is_wasm,
            "--key: {} is not a module; only modules carry signatures",
            a.module.display()
        );
        let keys = kiln::trust::TrustedKeys::from_files(a.key.clone())?;
        super::verify::verified(&bytes, &keys, &a.module)?;
    }

    // One closure per way of running, each taking a batch of rows.
    let (sig, mut run): (Signature, Runner) = if !is_wasm {
        let model = ModelFile::from_bytes(&bytes, &a.module)?;
        let kernel = model.to_kernel()?;
        let g = &model.graph;
        let sig = Signature {
            task: g.task,
            width: kernel.input_len(),
            shape: g.input.shape.clone(),
            labels: g.labels.clone(),
            features: g.input.features.clone(),
            target: g.target.clone(),
            missing: kernel.missing_features(),
        };
        (sig, Box::new(move |rows| Ok(kernel.predict(rows)?)))
    } else if a.native {
        let meta = module::read_meta(&bytes)?
            .context("the module has no kiln.meta section; was it built by `kiln build`?")?;
        let blob = module::embedded_blob(&bytes)?.context("the module embeds no model")?;
        let kernel = kiln::kiln_guest::blob::decode(blob)
            .map_err(|e| anyhow::anyhow!("the embedded model is invalid: {e}"))?
            .into_owned();
        (
            Signature::from(&meta),
            Box::new(move |rows| Ok(kernel.predict(rows)?)),
        )
    } else {
        let sandbox = Sandbox::new(Limits {
            memory_bytes: a.memory_mib << 20,
            deadline: Duration::from_millis(a.timeout_ms),
            ..Limits::default()
        })?;
        let loaded = sandbox
            .load(&bytes)
            .with_context(|| format!("refusing {}", a.module.display()))?;
        let sig = match loaded.meta() {
            Some(m) => Signature::from(m),
            None => bail!("the module has no kiln.meta section; was it built by `kiln build`?"),
        };
        (
            sig,
            Box::new(move |rows| Ok(sandbox.predict(&loaded, rows)?)),
        )
    };

    if a.stream {
        return stream(&a.input, &sig, &mut run);
    }
    let input = read_input(&a.input)?;
    let rows = data::read_rows(
        &input,
        &a.input,
        sig.width,
        &sig.features,
        sig.target.as_deref(),
    )?;
    if let Some(i) = rows
        .iter()
        .enumerate()
        .position(|(i, v)| v.is_nan() && !sig.missing.contains(&(i % sig.width.max(1))))
    {
        let (row, f) = (i / sig.width.max(1) + 1, i % sig.width.max(1));
        let name = sig
            .features
            .get(f)
            .map_or(String::new(), |n| format!(" `{n}`"));
        bail!(
            "{}: row {row}, feature {f}{name} is missing (null), which this model cannot route",
            a.input.display()
        );
    }
    let per_call = a.batch.unwrap_or(usize::MAX / sig.width.max(1)).max(1) * sig.width;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for chunk in rows.chunks(per_call) {
        let scores = run(chunk)?;
        let width = scores.len() / (chunk.len() / sig.width);
        for row in scores.chunks_exact(width) {
            writeln!(out, "{}", line(&sig, row))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `--stream`: one time step per line of `path`, a prediction of the last
/// `steps` steps per line once there are as many, each flushed at once.
fn stream(path: &Path, sig: &Signature, run: &mut Runner) -> anyhow::Result<()> {
    let &[steps, features] = sig.shape.as_slice() else {
        bail!(
            "--stream feeds time steps to a model whose input is [steps, features]; this model's input is {:?}",
            sig.shape
        );
    };
    let input: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut window: Vec<f32> = Vec::with_capacity(sig.width + features);
    let mut out = std::io::stdout().lock();
    for (n, text) in input.lines().enumerate() {
        let at = || format!("{}: line {}", path.display(), n + 1);
        let text = text.with_context(at)?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let step = parse_step(text).with_context(at)?;
        if step.len() != features {
            bail!(
                "{}: a step of this model has {features} values, found {}",
                at(),
                step.len()
            );
        }
        window.extend(step);
        if window.len() > steps * features {
            window.drain(..features);
        }
        if window.len() == steps * features {
            let scores = run(&window)?;
            writeln!(out, "{}", line(sig, &scores))?;
            out.flush()?;
        }
    }
    Ok(())
}

/// One step's values: `1, 2, 3` or `[1, 2, 3]`, all finite.
fn parse_step(text: &str) -> anyhow::Result<Vec<f32>> {
    let inner = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    let mut values = Vec::new();
    for v in inner.unwrap_or(text).split(',').map(str::trim) {
        match v.parse::<f32>() {
            Ok(x) if x.is_finite() => values.push(x),
            _ => bail!("`{v}` is not a finite number"),
        }
    }
    Ok(values)
}

/// One output line. Fields are `f32`, which serde_json prints in the
/// shortest form that reads back to the same bits.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Line<'a> {
    Class {
        class: usize,
        label: &'a str,
        scores: &'a [f32],
    },
    Value {
        value: f32,
        scores: &'a [f32],
    },
}

fn line<'a>(sig: &'a Signature, scores: &'a [f32]) -> String {
    let line = match sig.task {
        Task::Classification => {
            let class = train::argmax(scores);
            let label = sig.labels.get(class).map_or("", String::as_str);
            Line::Class {
                class,
                label,
                scores,
            }
        }
        Task::Regression => Line::Value {
            value: scores[0],
            scores,
        },
    };
    serde_json::to_string(&line).expect("a line serialises")
}

fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}
