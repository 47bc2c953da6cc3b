//! The gRPC side: `inference.GRPCInferenceService` (tonic), answering from
//! the same state, protocol code ([`super::v2`]) and keys as the REST side,
//! behind a [`gate::Gate`] that checks keys and bounds messages before tonic
//! decodes them, and each call logged by [`super::log`].

pub(crate) mod codec;
mod gate;

pub use gate::Gate;

use std::sync::Arc;
use std::time::Instant;

use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};
use tower::Layer;

use super::auth::Scope;
use super::error::ApiError;
use super::log::{AccessLog, AccessLogLayer, Transport};
use super::state::AppState;
use super::v2::pb::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use super::v2::pb::*;
use super::v2::{self, proto};

/// The service, sharing the REST side's state.
pub struct Grpc {
    state: Arc<AppState>,
}

impl Grpc {
    /// The gRPC service answering from `state`, behind its [`Gate`].
    pub fn service(state: Arc<AppState>) -> AccessLog<Gate<GrpcInferenceServiceServer<Grpc>>> {
        let max = state.max_body;
        let inner = GrpcInferenceServiceServer::new(Grpc {
            state: state.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX);
        AccessLogLayer(Transport::Grpc).layer(Gate::new(inner, state))
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
            name: v2::SERVER_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: v2::EXTENSIONS.map(String::from).into(),
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
        Ok(Response::new(proto::metadata(m)))
    }

    async fn model_infer(
        &self,
        req: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let started = Instant::now();
        let r = req.get_ref();
        let (model, version) = (&r.model_name, Some(r.model_version.as_str()));
        let admitted = self.state.admit(key(req.metadata()), model, version);
        let (version, from) = admitted.map_err(st)?;
        let answer = self
            .state
            .infer((&version, from), started, proto::decode(r))
            .await;
        Ok(Response::new(proto::encode(&version, answer.map_err(st)?)))
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
        self.state.check_model_control().map_err(st)?;
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
        self.state.check_model_control().map_err(st)?;
        self.state
            .registry
            .unload(&req.get_ref().model_name)
            .await
            .map_err(st)?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }
}
