//! The one check every call passes: a tower layer around the whole router that looks the
//! call's method up in [`super::roles::ROLE_TABLE`] and, for a method that needs a role,
//! authenticates the caller's token and checks its role before any service sees the call.
//!
//! It runs on the HTTP request, before tonic decodes anything, so a refused call costs no
//! decoding and no handler can forget the check. The [`Caller`] it established is put in
//! the request's extensions for handlers that want to know who called.

use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response};
use tower_layer::Layer;

use super::roles::{self, Need};
use crate::domain::access::{Access, Caller};
use crate::domain::error::Error;

/// Wraps a service in a [`Guard`].
#[derive(Debug, Clone)]
pub struct GuardLayer {
    access: Access,
}

impl GuardLayer {
    /// Checks calls with `access`.
    pub fn new(access: Access) -> GuardLayer {
        GuardLayer { access }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard { inner, access: self.access.clone() }
    }
}

/// A service that only passes calls the role table allows.
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    access: Access,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S> Service<Request<Body>> for Guard<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call; the fresh clone waits for the
        // next poll_ready (tower's usual dance for services called from a future).
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let access = self.access.clone();
        // Owned copies: the body is not `Sync`, so the request cannot be borrowed across
        // an await in a `Send` future.
        let method = request.uri().path().to_owned();
        let authorization = request.headers().get("authorization").cloned();
        Box::pin(async move {
            match admit(&access, &method, authorization.as_ref().map(|value| value.as_bytes())).await {
                Ok(caller) => {
                    if let Some(caller) = caller {
                        request.extensions_mut().insert(caller);
                    }
                    inner.call(request).await
                }
                Err(err) => Ok(tonic::Status::from(err).into_http()),
            }
        })
    }
}

/// Decides whether a call of `method` with `authorization` may pass; the caller, when the
/// method needs a role.
async fn admit(access: &Access, method: &str, authorization: Option<&[u8]>) -> Result<Option<Caller>, Error> {
    match roles::need(method) {
        None => Err(Error::Unlisted(method.to_owned())),
        Some(Need::Public | Need::RunnerCredential) => Ok(None),
        Some(Need::Role(needed)) => access.authorize(method, needed, authorization).await.map(Some),
    }
}
