//! Locating and loading the OpenVINO runtime and the face models, and pooling infer requests.
//!
//! The runtime comes from the PyPI wheel, which ships `libopenvino_c.so.<version>` only, so the
//! generic finder of the `openvino` crate does not see it: we look in known places ourselves and
//! load the library by its full path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openvino::{CompiledModel, Core, DeviceType, InferRequest, Model, PartialShape, RwPropertyKey};
use parking_lot::Mutex;

/// Where `tools/setup.sh` installs things in a development checkout.
const DEV_DEPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../.deps");
/// Where the appliance image installs them.
const SYSTEM_OPENVINO: &str = "/usr/lib/vigil/openvino";
const SYSTEM_MODELS: &str = "/usr/share/vigil/models";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "OpenVINO runtime not found (looked for libopenvino_c.so* in {searched}); \
         run `./just setup` (tools/setup.sh) or set VIGIL_OPENVINO_LIB to the library file"
    )]
    RuntimeMissing { searched: String },
    #[error("OpenVINO runtime at {path} could not be loaded: {reason}")]
    RuntimeLoad { path: PathBuf, reason: String },
    #[error(
        "face model {name} not found in {dir}; run `./just setup` (models/fetch.sh) \
         or set VIGIL_MODELS_DIR to the folder holding the models of models/manifest"
    )]
    ModelMissing { name: String, dir: PathBuf },
    #[error("OpenVINO failed to {action} {model}: {source}")]
    OpenVino {
        action: &'static str,
        model: String,
        #[source]
        source: openvino::InferenceError,
    },
    #[error("OpenVINO set-up failed: {0}")]
    Setup(#[from] openvino::SetupError),
}

/// The models folder: `$VIGIL_MODELS_DIR`, else the checkout's `.deps/models`, else the image's.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VIGIL_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let dev = Path::new(DEV_DEPS).join("models");
    if dev.is_dir() {
        return dev;
    }
    PathBuf::from(SYSTEM_MODELS)
}

/// Finds `libopenvino_c.so*`: in `$VIGIL_OPENVINO_LIB` (a file or a folder) when set, else in
/// the checkout's `.deps/openvino`, then the image's folder.
pub fn find_openvino_library() -> Result<PathBuf, RuntimeError> {
    let dirs = match std::env::var_os("VIGIL_OPENVINO_LIB") {
        Some(p) if Path::new(&p).is_file() => return Ok(PathBuf::from(p)),
        Some(p) => vec![PathBuf::from(p)],
        None => vec![
            Path::new(DEV_DEPS).join("openvino/openvino/libs"),
            PathBuf::from(SYSTEM_OPENVINO),
        ],
    };
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libopenvino_c.so"))
            })
            .collect();
        found.sort();
        if let Some(lib) = found.pop() {
            return Ok(lib);
        }
    }
    Err(RuntimeError::RuntimeMissing {
        searched: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The one OpenVINO core of the process, with the face models read from `models_dir`.
pub struct Runtime {
    core: Mutex<Core>,
    models_dir: PathBuf,
}

impl Runtime {
    /// Loads the OpenVINO library and creates its core. Each model is compiled at the
    /// precision [`precision_of`] gives it.
    pub fn new(models_dir: PathBuf) -> Result<Self, RuntimeError> {
        let lib = find_openvino_library()?;
        openvino_sys::library::load_from(lib.clone()).map_err(|reason| {
            RuntimeError::RuntimeLoad {
                path: lib.clone(),
                reason,
            }
        })?;
        let mut core = Core::new()?;
        // Throughput: one stream per core, each request on one thread. The detector's small
        // networks do not spread over two threads (they spin instead), and the appliance runs
        // several cameras or photos at once: measured 41 against 35 enrolled faces a second.
        core.set_property(
            &DeviceType::CPU,
            &RwPropertyKey::HintPerformanceMode,
            "THROUGHPUT",
        )
        .map_err(|source| RuntimeError::OpenVino {
            action: "set the throughput hint for",
            model: "CPU".into(),
            source,
        })?;
        tracing::debug!(library = %lib.display(), "OpenVINO runtime loaded");
        Ok(Self {
            core: Mutex::new(core),
            models_dir,
        })
    }

    /// The runtime with the models from [`models_dir`].
    pub fn from_environment() -> Result<Self, RuntimeError> {
        Self::new(models_dir())
    }

    pub fn models_dir(&self) -> &Path {
        &self.models_dir
    }

    /// Reads a model file of the models folder, fixes its single input to `shape`, and
    /// compiles it for the CPU.
    pub fn compile(&self, name: &str, shape: &[i64]) -> Result<Arc<ModelPool>, RuntimeError> {
        let path = self.model_path(name)?;
        let ov = |action: &'static str| {
            let model = name.to_string();
            move |source| RuntimeError::OpenVino {
                action,
                model,
                source,
            }
        };
        let partial = PartialShape::new_static(shape.len() as i64, shape).map_err(ov("shape"))?;
        let mut core = self.core.lock();
        // The core's property applies to the models compiled after it is set; the lock
        // keeps it with this model.
        core.set_property(
            &DeviceType::CPU,
            &RwPropertyKey::HintInferencePrecision,
            precision_of(name),
        )
        .map_err(ov("set the precision of"))?;
        let mut model: Model = core
            .read_model_from_file(&path.to_string_lossy(), "")
            .map_err(ov("read"))?;
        model
            .reshape_single_input(&partial)
            .map_err(ov("reshape"))?;
        let compiled = core
            .compile_model(&model, DeviceType::CPU)
            .map_err(ov("compile"))?;
        tracing::debug!(model = name, ?shape, "model compiled");
        Ok(Arc::new(ModelPool {
            name: name.into(),
            compiled: Mutex::new(compiled),
            idle: Mutex::new(Vec::new()),
        }))
    }

    fn model_path(&self, name: &str) -> Result<PathBuf, RuntimeError> {
        let path = self.models_dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(RuntimeError::ModelMissing {
                name: name.into(),
                dir: self.models_dir.clone(),
            })
        }
    }
}

/// The inference precision of a model: the embedder always f32, since embeddings made at
/// different precisions (on different machines: OpenVINO picks bf16 where the CPU has it) must
/// never be compared with one another. The detector's networks may run in bf16 where the CPU
/// has AMX or AVX-512 BF16 (f32 elsewhere: OpenVINO falls back): they only propose boxes and
/// landmarks, each embedding is still computed in f32, and bf16 runs them 1.4x faster (the
/// cameras bench, detection at `min_face` 40). The test-pair accuracy is checked with it.
fn precision_of(model: &str) -> &'static str {
    if DETECTOR_MODELS.contains(&model) {
        "bf16"
    } else {
        "f32"
    }
}

const DETECTOR_MODELS: [&str; 3] = ["pnet.tflite", "rnet.tflite", "onet.tflite"];

/// A model compiled once for each input shape asked of it, on first use. OpenVINO's CPU plugin
/// runs these small networks several times faster with static shapes than with dynamic ones;
/// a camera's frames always have the same shape, so each pyramid level compiles once.
pub struct ShapedModel {
    runtime: Arc<Runtime>,
    name: &'static str,
    compiled: Mutex<HashMap<Vec<i64>, Arc<ModelPool>>>,
}

/// Compiled shapes kept per model; past this the cache starts afresh (only photo batches of
/// many different sizes get there).
const MAX_SHAPES: usize = 64;

impl ShapedModel {
    /// Checks that the model file is there; compiles nothing yet.
    pub fn new(runtime: Arc<Runtime>, name: &'static str) -> Result<Self, RuntimeError> {
        runtime.model_path(name)?;
        Ok(Self {
            runtime,
            name,
            compiled: Mutex::new(HashMap::new()),
        })
    }

    pub fn for_shape(&self, shape: &[i64]) -> Result<Arc<ModelPool>, RuntimeError> {
        let mut compiled = self.compiled.lock();
        if let Some(pool) = compiled.get(shape) {
            return Ok(pool.clone());
        }
        if compiled.len() >= MAX_SHAPES {
            compiled.clear();
        }
        let pool = self.runtime.compile(self.name, shape)?;
        compiled.insert(shape.to_vec(), pool.clone());
        Ok(pool)
    }
}

/// One compiled model shared by every thread, with a pool of infer requests: a request is taken
/// for one inference and given back afterwards, so requests are created only under contention.
pub struct ModelPool {
    name: String,
    compiled: Mutex<CompiledModel>,
    idle: Mutex<Vec<InferRequest>>,
}

impl ModelPool {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` with an infer request of this model.
    pub fn with_request<T>(
        &self,
        f: impl FnOnce(&mut InferRequest) -> Result<T, openvino::InferenceError>,
    ) -> Result<T, RuntimeError> {
        let taken = self.idle.lock().pop();
        let mut request = match taken {
            Some(r) => r,
            None => self
                .compiled
                .lock()
                .create_infer_request()
                .map_err(|source| RuntimeError::OpenVino {
                    action: "create an infer request for",
                    model: self.name.clone(),
                    source,
                })?,
        };
        let result = f(&mut request).map_err(|source| RuntimeError::OpenVino {
            action: "run",
            model: self.name.clone(),
            source,
        });
        self.idle.lock().push(request);
        result
    }
}
