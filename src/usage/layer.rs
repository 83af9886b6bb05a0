use super::{OnUsage, UsageService};
use std::sync::Arc;
use tower::Layer;

/// Wraps a service so every answer's usage is read and reported to a hook.
#[derive(Debug)]
pub struct UsageLayer<H> {
    hook: Arc<H>,
}

impl<H: OnUsage> UsageLayer<H> {
    /// A layer that reports each attempt's usage to `hook`.
    pub fn new(hook: H) -> Self {
        Self {
            hook: Arc::new(hook),
        }
    }
}

impl<H> Clone for UsageLayer<H> {
    fn clone(&self) -> Self {
        Self {
            hook: self.hook.clone(),
        }
    }
}

impl<S, H> Layer<S> for UsageLayer<H> {
    type Service = UsageService<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        UsageService::new(inner, self.hook.clone())
    }
}
