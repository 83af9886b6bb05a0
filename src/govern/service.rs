//! [`GovernService`]: the admission of one request.

use super::bound::{cost_bound, input_bound};
use super::hold::Hold;
use super::refuse::{refusal_error, unavailable};
use super::{ChargeTo, GovernLayer};
use crate::budget::Reservation;
use crate::error::{Error, ErrorKind};
use crate::fallback::GateAttempts;
use crate::ledger::RequestLedger;
use crate::meta::{Endpoint, RequestMeta};
use crate::pricing::Money;
use crate::route::RouteDecision;
use crate::usage::WatchUsage;
use bytes::Bytes;
use futures_util::future::{BoxFuture, Either};
use http::{Request, Response};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// The service made by [`GovernLayer`].
#[derive(Clone, Debug)]
pub struct GovernService<S> {
    inner: S,
    layer: GovernLayer,
}

impl<S> GovernService<S> {
    pub(super) fn new(inner: S, layer: GovernLayer) -> Self {
        Self { inner, layer }
    }
}

/// What admission needs to know, read from the request.
struct Ask {
    charge: ChargeTo,
    endpoint: Endpoint,
    model: Option<String>,
    max_tokens: Option<u64>,
    input_bound: u64,
    ledger: Option<RequestLedger>,
    request_id: String,
}

impl<S, B> Service<Request<Bytes>> for GovernService<S>
where
    S: Service<Request<Bytes>, Response = Response<B>, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<B>, Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let extensions = request.extensions();
        let (Some(charge), Some(meta)) = (
            extensions.get::<ChargeTo>(),
            extensions.get::<RequestMeta>(),
        ) else {
            return Either::Left(self.inner.call(request));
        };
        if meta.endpoint == Endpoint::Models {
            // Listing models is answered by the gateway itself: nothing to govern.
            return Either::Left(self.inner.call(request));
        }
        let ask = Ask {
            charge: charge.clone(),
            endpoint: meta.endpoint,
            model: meta.model.clone(),
            max_tokens: meta.max_tokens,
            input_bound: input_bound(request.body().len(), meta.media_blocks),
            ledger: RequestLedger::of(extensions).cloned(),
            request_id: meta.request_id.clone(),
        };
        // Call the service that was made ready, not a fresh clone of it.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Either::Right(Box::pin(async move {
            let request = admit(&layer, ask, request).await?;
            inner.call(request).await
        }))
    }
}

/// Admit `request` (or refuse it) and leave its hold in it.
async fn admit(
    layer: &GovernLayer,
    ask: Ask,
    mut request: Request<Bytes>,
) -> Result<Request<Bytes>, Error> {
    check_models(&ask)?;
    let Some(ledger_entry) = ask.ledger.clone() else {
        return Err(Error::new(
            ErrorKind::Internal,
            "budgets and limits need the Record layer outside Govern",
        ));
    };
    let budgeted = ask.charge.scopes.iter().any(|(_, l)| l.budget.is_some());
    let (cost, tokens) = if ask.endpoint == Endpoint::Messages {
        bound_attempts(layer, &ask, budgeted, &mut request)?
    } else {
        (Money::ZERO, 0)
    };
    let admission = crate::budget::Admission {
        request_id: ask.request_id.clone(),
        scopes: ask.charge.scopes.clone(),
        cost_bound: cost,
        token_bound: tokens,
        lease: crate::budget::DEFAULT_LEASE,
    };
    match layer.ledger.admit(admission).await {
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => {
            (layer.on_refusal)(&refusal);
            return Err(refusal_error(&refusal, layer.ledger.now()));
        }
        Err(error) => return Err(unavailable(&error)),
    }
    let reservation = Arc::new(Reservation::new(
        layer.ledger.clone(),
        &ask.request_id,
        cost,
        tokens,
    ));
    ledger_entry.set_reservation(reservation.clone());
    if ask.endpoint == Endpoint::Messages {
        let hold = Arc::new(Hold {
            reservation,
            prices: layer.prices.clone(),
            requested_model: ask.model.clone(),
            input_bound: ask.input_bound,
            max_tokens: ask.max_tokens.unwrap_or(0),
            on_refusal: layer.on_refusal.clone(),
        });
        let extensions = request.extensions_mut();
        extensions.insert(WatchUsage(hold.clone()));
        extensions.insert(GateAttempts(hold));
    }
    Ok(request)
}

/// 403 when the model is outside a scope's `models`.
fn check_models(ask: &Ask) -> Result<(), Error> {
    let Some(model) = ask.model.as_deref() else {
        return Ok(());
    };
    for (scope, globs) in &ask.charge.models {
        if !crate::keys::globs_allow(Some(globs), model) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!(
                    "{scope} may not use model {model:?} (allowed: {})",
                    globs.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The request's cost and token bounds: the dearest of its attempts. For a budgeted
/// request, attempts whose model has no price are dropped from the route.
fn bound_attempts(
    layer: &GovernLayer,
    ask: &Ask,
    budgeted: bool,
    request: &mut Request<Bytes>,
) -> Result<(Money, u64), Error> {
    let max_tokens = match (ask.max_tokens, budgeted) {
        (Some(max), _) => max,
        (None, false) => 0,
        (None, true) => {
            return Err(Error::new(
                ErrorKind::BadRequest,
                "max_tokens: a request on a budget must say max_tokens (its output's bound)",
            ))
        }
    };
    let tokens = ask.input_bound.saturating_add(max_tokens);
    if !budgeted {
        return Ok((Money::ZERO, tokens));
    }
    let requested = ask.model.as_deref();
    let bound_of = |provider: Option<&str>, model: Option<&str>| {
        let model = model.or(requested)?;
        let price = layer.prices.lookup(provider, model)?;
        Some(cost_bound(price, ask.input_bound, max_tokens))
    };
    let Some(decision) = request
        .extensions_mut()
        .get_mut::<RouteDecision>()
        .filter(|d| !d.attempts.is_empty())
    else {
        return match bound_of(None, None) {
            Some(cost) => Ok((cost, tokens)),
            None => Err(unpriced(requested)),
        };
    };
    let mut dearest = None;
    decision.attempts.retain(|attempt| {
        match bound_of(Some(&attempt.provider), attempt.model.as_deref()) {
            Some(cost) => {
                dearest = dearest.max(Some(cost));
                true
            }
            None => false,
        }
    });
    match dearest {
        Some(cost) => Ok((cost, tokens)),
        None => Err(unpriced(requested)),
    }
}

fn unpriced(model: Option<&str>) -> Error {
    Error::new(
        ErrorKind::BudgetExceeded,
        format!(
            "model {:?} has no price, so a budgeted key cannot use it (its cost could not \
             be bounded; give it one under [pricing])",
            model.unwrap_or("")
        ),
    )
}
