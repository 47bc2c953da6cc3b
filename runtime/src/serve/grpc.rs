//! The gRPC side: `inference.GRPCInferenceService` (tonic), generated from
//! `proto/grpc_service.proto` and answering from the same registry, checks
//! and keys as the REST side. Outputs go back as `raw_output_contents`
//! (little-endian FP32), as Triton answers, which stock clients decode.

use std::sync::Arc;

use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::AppState;
use super::auth::Scope;
use super::error::ApiError;
use super::v2::{self, Input, Values};

/// The generated protocol types and service.
#[allow(unreachable_pub, missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("inference");
}

use pb::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use pb::*;

/// The service, sharing the REST side's state.
pub struct Grpc {
    state: Arc<AppState>,
}

impl Grpc {
    /// A tonic service answering from `state`.
    pub fn service(state: Arc<AppState>) -> GrpcInferenceServiceServer<Grpc> {
        let max = state.max_body;
        GrpcInferenceServiceServer::new(Grpc { state })
            .max_decoding_message_size(max)
            .max_encoding_message_size(usize::MAX)
    }

    fn check(&self, md: &MetadataMap, scope: Scope<'_>) -> Result<(), Status> {
        self.state
            .auth
            .check(key(md), scope)
            .map_err(|e| e.to_status())
    }
}

/// The API key in gRPC metadata (`authorization: Bearer …` or `x-api-key`).
fn key(md: &MetadataMap) -> Option<&str> {
    let get = |name| md.get(name).and_then(|v| v.to_str().ok());
    super::auth::key_from(get("authorization"), get("x-api-key"))
}

fn st(e: impl Into<ApiError>) -> Status {
    e.into().to_status()
}

#[tonic::async_trait]
impl GrpcInferenceService for Grpc {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        let ready = self.state.check_ready().is_ok() && self.state.registry.all_ready();
        Ok(Response::new(ServerReadyResponse { ready }))
    }

    async fn model_ready(
        &self,
        req: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        self.check(req.metadata(), Scope::Model(&req.get_ref().name))?;
        let r = req.get_ref();
        let ready = self.state.check_ready().is_ok()
            && self
                .state
                .registry
                .get(&r.name, Some(r.version.as_str()))
                .is_ok();
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "kiln".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: vec!["model_repository".into(), "binary_tensor_data".into()],
        }))
    }

    async fn model_metadata(
        &self,
        req: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        self.check(req.metadata(), Scope::Model(&req.get_ref().name))?;
        let r = req.get_ref();
        let version = self
            .state
            .registry
            .get(&r.name, Some(r.version.as_str()))
            .map_err(st)?;
        let m = v2::ModelMetadata::of(&version, &self.state.registry.versions(&r.name));
        let tensor = |t: v2::TensorMetadata| model_metadata_response::TensorMetadata {
            name: t.name,
            datatype: t.datatype,
            shape: t.shape,
        };
        Ok(Response::new(ModelMetadataResponse {
            name: m.name,
            versions: m.versions,
            platform: m.platform,
            inputs: m.inputs.into_iter().map(tensor).collect(),
            outputs: m.outputs.into_iter().map(tensor).collect(),
        }))
    }

    async fn model_infer(
        &self,
        req: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let started = std::time::Instant::now();
        self.check(req.metadata(), Scope::Model(&req.get_ref().model_name))?;
        self.state.check_ready().map_err(st)?;
        let r = req.into_inner();
        let version = self
            .state
            .registry
            .get(&r.model_name, Some(r.model_version.as_str()))
            .map_err(st)?;
        let result = infer(&version, &r).await;
        let queue = result.as_ref().ok().map(|(_, q)| *q);
        version
            .metrics
            .record_request(result.is_ok(), started.elapsed(), queue);
        result.map(|(r, _)| Response::new(r)).map_err(st)
    }

    async fn repository_index(
        &self,
        req: Request<RepositoryIndexRequest>,
    ) -> Result<Response<RepositoryIndexResponse>, Status> {
        self.check(req.metadata(), Scope::Admin)?;
        let ready_only = req.get_ref().ready;
        let models = self
            .state
            .registry
            .index()
            .into_iter()
            .filter(|e| !ready_only || e.state == "READY")
            .map(|e| repository_index_response::ModelIndex {
                name: e.name,
                version: e.version,
                state: e.state.into(),
                reason: e.reason,
            })
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        req: Request<RepositoryModelLoadRequest>,
    ) -> Result<Response<RepositoryModelLoadResponse>, Status> {
        self.check(req.metadata(), Scope::Admin)?;
        self.state
            .registry
            .load(&req.get_ref().model_name)
            .await
            .map_err(st)?;
        Ok(Response::new(RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        req: Request<RepositoryModelUnloadRequest>,
    ) -> Result<Response<RepositoryModelUnloadResponse>, Status> {
        self.check(req.metadata(), Scope::Admin)?;
        self.state
            .registry
            .unload(&req.get_ref().model_name)
            .await
            .map_err(st)?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }
}

async fn infer(
    version: &crate::registry::Version,
    r: &ModelInferRequest,
) -> Result<(ModelInferResponse, std::time::Duration), ApiError> {
    let raw = &r.raw_input_contents;
    if !raw.is_empty() && raw.len() != r.inputs.len() {
        return Err(ApiError::bad_request(format!(
            "raw_input_contents has {} entries but there are {} inputs",
            raw.len(),
            r.inputs.len()
        )));
    }
    let mut inputs = Vec::with_capacity(r.inputs.len());
    for (i, t) in r.inputs.iter().enumerate() {
        let values = if let Some(bytes) = raw.get(i) {
            Values::Raw(bytes)
        } else if let Some(c) = &t.contents {
            if !c.fp32_contents.is_empty() {
                Values::F32(&c.fp32_contents)
            } else if !c.fp64_contents.is_empty() {
                Values::Numbers(c.fp64_contents.clone())
            } else if !c.int_contents.is_empty() {
                Values::Numbers(c.int_contents.iter().map(|&v| v as f64).collect())
            } else if !c.int64_contents.is_empty() {
                Values::Numbers(c.int64_contents.iter().map(|&v| v as f64).collect())
            } else {
                Values::Absent
            }
        } else {
            Values::Absent
        };
        inputs.push(Input {
            name: &t.name,
            datatype: &t.datatype,
            shape: &t.shape,
            values,
        });
    }
    let (rows_data, rows) = v2::validate(version, inputs)?;
    v2::check_outputs(version, r.outputs.iter().map(|o| o.name.as_str()))?;
    let outcome = version.infer(rows_data).await?;
    let raw_out: Vec<u8> = outcome
        .scores
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    let response = ModelInferResponse {
        model_name: version.name.clone(),
        model_version: version.version.to_string(),
        id: r.id.clone(),
        parameters: Default::default(),
        outputs: vec![model_infer_response::InferOutputTensor {
            name: version.meta.output.name.clone(),
            datatype: "FP32".into(),
            shape: vec![rows as i64, version.output_len() as i64],
            parameters: Default::default(),
            contents: None,
        }],
        raw_output_contents: vec![raw_out],
    };
    Ok((response, outcome.queue))
}
